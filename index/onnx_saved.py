"""The cached ONNX export run without torch, sentence-transformers or transformers.

Next to each export (index/onnx_encoder.py), `<key>.refs.json` holds `encode()`'s vectors of PROBE_TEXTS. With
both files present, `load_saved_encoder` runs it without those libraries: the key is computed from the model
folder's files and sentence-transformers configuration (modules.json, sentence_bert_config.json,
1_Pooling/config.json), texts are tokenised by the folder's tokenizer.json (the `tokenizers` package, truncated at
`max_seq_length`), and the session's vectors are checked against the saved ones (cosine > 0.9999). Anything
missing or different sends the caller to the torch path, which exports, checks and writes the reference file.
"""

from __future__ import annotations

from pathlib import Path

from index.onnx_encoder import (
    PROBE_TEXTS,
    STANDARD_STACKS,
    OnnxEncoder,
    _key,
    _read_json,
    _saved_refs,
    _weight_files,
    log,
    refs_path,
    warn_once,
)


def folder_stack(location: str) -> dict:
    """The model folder's stack read from its sentence-transformers files, without loading it: the modules'
    names, `max_seq_length` and `do_lower_case`. Raises ValueError when the folder is not the standard stack
    (Transformer at the root, mean Pooling[, Normalize], no prompts) or does not say its `max_seq_length`."""
    folder = Path(location)
    if not (folder / "tokenizer.json").is_file() or not (folder / "modules.json").is_file():
        raise ValueError(f"{location} is not a sentence-transformers folder with a tokenizer.json")
    entries = sorted(_read_json(folder / "modules.json"), key=lambda e: e["idx"])
    names = [e["type"].rsplit(".", 1)[-1] for e in entries]
    if names not in STANDARD_STACKS or entries[0].get("path", "") not in ("", "."):
        raise ValueError(f"modules {names}")
    pooling = _read_json(folder / entries[1]["path"] / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"pooling {sorted(modes)}")
    config = _read_json(folder / "sentence_bert_config.json")
    if not isinstance(config.get("max_seq_length"), int):
        raise ValueError("no max_seq_length in sentence_bert_config.json")
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        extra = _read_json(st_config)
        if any((extra.get("prompts") or {}).values()) or extra.get("default_prompt_name"):
            raise ValueError("the model has prompts")
    return {
        "modules": names,
        "max_seq_length": config["max_seq_length"],
        "do_lower_case": bool(config.get("do_lower_case")),
    }


def folder_fingerprint(location: str, stack: dict) -> str:
    """`fingerprint` of the model in this folder, from its files alone (the same key, no torch)."""
    files = _weight_files(Path(location))
    if not files:
        raise ValueError(f"{location} has no weight files")
    return _key(location, files, stack["modules"], stack["max_seq_length"])


def tokenizer_preprocess(location: str, stack: dict):
    """Texts -> the export's numpy inputs by the folder's tokenizer.json alone: truncated at `max_seq_length`
    tokens (special tokens included) and padded to the longest, as the SentenceTransformer tokenises."""
    import numpy as np
    from tokenizers import Tokenizer

    folder = Path(location)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad_token = (tokenizer.padding or {}).get("pad_token") or "[PAD]"
    if (folder / "tokenizer_config.json").is_file():
        configured = _read_json(folder / "tokenizer_config.json").get("pad_token") or pad_token
        pad_token = configured.get("content", pad_token) if isinstance(configured, dict) else configured
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"the tokenizer has no {pad_token!r}")
    tokenizer.enable_truncation(max_length=stack["max_seq_length"])
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    lower = stack["do_lower_case"]

    def preprocess(texts: list[str]) -> dict:
        encodings = tokenizer.encode_batch([t.lower() for t in texts] if lower else list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    return preprocess


def agrees_with_refs(encoder: OnnxEncoder, refs) -> float:
    """The smallest cosine between the saved reference vectors and the question session's, one text at a time
    (as questions are encoded; the long probe alone, not padding seven others to 256 tokens: ~0.3 s), and the
    documents session's on the short probes."""
    import numpy as np

    texts = list(PROBE_TEXTS)
    ours = np.concatenate([encoder.encode([t]) for t in texts])
    documents = encoder.encode_documents(texts[:-1])
    return float(min((ours * refs).sum(axis=1).min(), (documents * refs[:-1]).sum(axis=1).min()))


def load_saved_encoder(location: str, cache_dir: Path, threads: int, workers: int = 1) -> OnnxEncoder | None:
    """The cached export of the model folder `location`, run and checked without torch, or None: no export or
    reference file yet, a folder the torch-free path does not read (logged at info), or a failed check (warned
    once). With None the caller takes the torch path (`load_onnx_encoder`), which exports and writes both."""
    try:
        stack = folder_stack(location)
        path = Path(cache_dir) / f"{folder_fingerprint(location, stack)}.onnx"
    except Exception as e:
        log.info("the ONNX export is loaded through torch: %s", e)
        return None
    if not path.is_file() or not refs_path(path).is_file():
        return None
    try:
        refs = _saved_refs(path)
        encoder = OnnxEncoder(tokenizer_preprocess(location, stack), path, threads, workers)
        cosine = agrees_with_refs(encoder, refs)
        if cosine < 0.9999:
            raise ValueError(f"its vectors differ from the saved ones (cosine {cosine:.6f})")
        return encoder
    except Exception as e:
        warn_once(
            f"the ONNX Runtime export could not be checked without torch, loading torch ({type(e).__name__}: {e})"
        )
        return None


__all__ = ["agrees_with_refs", "folder_fingerprint", "folder_stack", "load_saved_encoder", "tokenizer_preprocess"]
