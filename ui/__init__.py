"""What people and programs touch: the `qa` CLI and the Gradio chat. Calls `qa` services only."""
