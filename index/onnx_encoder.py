"""The embedding model run by ONNX Runtime: exported once from the loaded SentenceTransformer, kept on disk.

Only the standard sentence-embedding stack takes this path (Transformer -> mean Pooling -> optional Normalize, no
prompt, not quantised); anything else, a failed export or an unloadable file keeps the torch path (logged once).
The exported graph is the model's own modules traced as they run (tokenisation stays in Python: the model's own
`preprocess`, so truncation at `max_seq_length` is the SentenceTransformer's), and a new session is checked
against torch on a few texts before it is used: vectors equal `encode()`'s (cosine > 0.9999).

The file is keyed by the model's location, its weight and configuration files (name, size, modification time)
and the library versions that trace it; it is written to a temporary name and renamed, so a reader never sees
half a file, and a new export removes the model's older ones. `python -m bench query-encode` compares the paths.

Next to each export, `<key>.refs.json` holds `encode()`'s vectors of PROBE_TEXTS: index/onnx_saved.py runs the
export without torch and checks it against them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path

log = logging.getLogger(__name__)

EXPORT_VERSION = 2  # bump when the exported graph changes
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Files whose change means other weights or another stack (the tokenizer runs in Python, outside the graph).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json", "modules.json", "sentence_bert_config.json")
CHECK_TEXTS = ("Who co-chaired the dialogue?", "Der Handel über den Khunjerab-Pass wuchs im Jahr 2026.", "中巴战略对话")
# The reference texts of the torch-free check: short, line breaks and capitals, other scripts, emoji, and one
# past the 256-token limit (truncation).
PROBE_TEXTS = (
    "Who co-chaired the dialogue?",
    "  What   ABOUT\nline breaks and  spaces?  ",
    "Der Handel über den Khunjerab-Pass wuchs im Jahr 2026.",
    "中巴战略对话是什么时候举行的？",
    "پاکستان اور چین کے درمیان اسٹریٹجک مذاکرات کب ہوئے؟",
    "Ποιος ηγήθηκε των συνομιλιών;",
    "URAAN 🚀 Pakistan!!! ???",
    " ".join(["The long probe repeats itself past the model's 256-token limit, so it is truncated."] * 30),
)
STANDARD_STACKS = (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
BATCH_CHARS = 500  # characters per batch of `encode_documents`: one 500-character chunk, or a few sentences
_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/grounded-qa/onnx, else ~/.cache/grounded-qa/onnx: one export per machine and model."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "grounded-qa" / "onnx"


def unsupported(model) -> str | None:
    """Why this SentenceTransformer cannot take the ONNX path, or None when it is the standard stack."""
    names = [type(m).__name__ for m in model]
    if names not in STANDARD_STACKS:
        return f"modules {names} (the ONNX path takes Transformer, Pooling[, Normalize])"
    if getattr(model[1], "pooling_mode", None) != "mean":
        return f"pooling {getattr(model[1], 'pooling_mode', '?')!r} (the ONNX path takes mean pooling)"
    if any(model.prompts.values()) or model.default_prompt_name:
        return "the model has prompts"
    if any(".quantized" in type(m).__module__ for m in model.modules()):  # e.g. QA_EMBED_INT8's linear layers
        return "the model is quantised"
    return None


def _weight_files(folder: Path) -> list:
    files = []
    for name in WEIGHT_FILES + ("1_Pooling/config.json",):
        path = folder / name
        if path.is_file():
            st = path.stat()
            files.append([name, st.st_size, st.st_mtime_ns])
    return files


def _key(location: str, files: list, modules: list[str], max_seq_length: int) -> str:
    from importlib.metadata import version

    folder = Path(location)
    key = {
        "version": EXPORT_VERSION,
        "location": str(folder.resolve()) if folder.exists() else location,
        "files": files,
        "modules": modules,
        "max_seq_length": max_seq_length,
        "libraries": [version(name) for name in ("torch", "transformers", "onnx")],  # read without importing
    }
    where = hashlib.sha256(key["location"].encode()).hexdigest()[:8]  # groups the exports of one model
    return f"{where}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]}"


def fingerprint(model, location: str) -> str:
    """What identifies an export: the weights' location and files, the stack, and the tracing libraries."""
    files = _weight_files(Path(location))
    if not files:  # not a local folder (a cached hub name): hash the weights themselves
        digest = hashlib.sha256()
        for key, tensor in sorted(model.state_dict().items()):
            digest.update(key.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        files.append(["state_dict", digest.hexdigest()])
    return _key(location, files, [type(m).__name__ for m in model], model.max_seq_length)


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def refs_path(onnx_path: Path) -> Path:
    """The reference vectors saved next to an export."""
    return onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + ".refs.json")


def write_refs(model, onnx_path: Path) -> None:
    """`encode()`'s vectors of PROBE_TEXTS next to the export, atomically (`store.write_json_atomic`)."""
    from index.store import write_json_atomic

    texts = [t.replace("\n", " ") for t in PROBE_TEXTS]
    vectors = model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    write_json_atomic(refs_path(onnx_path), {"texts": list(PROBE_TEXTS), "vectors": vectors.tolist()})


def _saved_refs(onnx_path: Path):
    """The saved reference vectors (a float32 array), or ValueError when the file is not for PROBE_TEXTS."""
    import numpy as np

    saved = _read_json(refs_path(onnx_path))
    vectors = np.asarray(saved["vectors"], dtype=np.float32)
    if saved["texts"] != list(PROBE_TEXTS) or vectors.ndim != 2 or len(vectors) != len(PROBE_TEXTS):
        raise ValueError("the reference file is for other texts")
    return vectors


def prune(target: Path) -> list[Path]:
    """Remove the other exports of the model `target` was exported from (same location, older weights or
    libraries; ~90 MB each); exports of other models stay. Returns what was removed."""
    where = target.name.split("-", 1)[0]
    removed = []
    olds = list(target.parent.glob(f"{where}-*.onnx")) + list(target.parent.glob(f"{where}-*.refs.json"))
    for old in olds:
        if old not in (target, refs_path(target)):
            old.unlink(missing_ok=True)  # a process that loaded it keeps its session: the file is read at load
            removed.append(old)
    return removed


def export(model, target: Path) -> None:
    """Trace the model's modules (features -> normalised sentence embedding) into `target`, atomically."""
    import warnings

    import torch

    # Two texts of different lengths: the trace sees padding, so no branch for an all-ones mask is recorded.
    example = model.preprocess(["an example sentence to trace, with padding after the shorter one", "a short one"])
    features = {k: v for k, v in example.items() if k in INPUTS}
    names = [k for k in INPUTS if k in features]

    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            out = self.model(dict(zip(names, tensors)))["sentence_embedding"]
            return torch.nn.functional.normalize(out, p=2, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow in the modules
            torch.onnx.export(
                Stack().eval(),
                tuple(features[n] for n in names),
                str(tmp),
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning: the cores are shared with llama.cpp and other requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def model_preprocess(model):
    """Texts -> the export's numpy inputs, by the SentenceTransformer's own `preprocess`."""

    def preprocess(texts: list[str]) -> dict:
        return {k: v.numpy() for k, v in model.preprocess(texts).items() if k in INPUTS}

    return preprocess


_budget: int | None = None


def default_threads() -> int:
    """torch's default intra-op thread count, without importing torch: OMP_NUM_THREADS, else the usable cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def thread_budget() -> int:
    """How many threads encoding may use now: torch's count when torch is loaded, else `set_thread_budget`'s."""
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else default_threads()
    return min(threads, _budget) if _budget else threads


def set_thread_budget(threads: int) -> None:
    """Lower or restore the encoding threads (torch's too when torch is loaded)."""
    global _budget
    _budget = max(1, threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_budget)


class OnnxEncoder:
    """Texts -> unit vectors through ONNX Runtime; thread-safe (a session may run on several threads at once).

    One question runs on a session with `threads` intra-op threads. Many texts (`encode_documents`) are cut
    into small batches of similar length that `workers` threads run at once on a second, one-thread session:
    a batch of ~BATCH_CHARS characters keeps its activations in cache, and independent batches use the cores
    better than one batch split across them (bench/ingest.py measures it). Both sessions are made here, so the
    first question (whose passage sentences are encoded as documents) pays for neither."""

    def __init__(self, preprocess, path: Path, threads: int, workers: int = 1):
        from concurrent.futures import ThreadPoolExecutor

        self.path = path
        self.threads = max(1, threads)
        self.workers = max(1, workers)
        self._session = session(path, self.threads)
        self._batch_session = session(path, 1)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._preprocess = preprocess  # texts -> numpy inputs (`model_preprocess` or `tokenizer_preprocess`)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx-encode")

    def encode(self, texts: list[str], on=None):
        """A float32 array, one unit vector per text (line breaks become spaces, as langchain's embedder does)."""
        features = self._preprocess([t.replace("\n", " ") for t in texts])
        feed = {name: features[name] for name in self._inputs}
        return (on or self._session).run(None, feed)[0]

    def __call__(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()

    def encode_documents(self, texts: list[str]):
        """`encode` for many texts: longest first, in batches of about BATCH_CHARS characters, on the workers."""
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        batches: list[list[int]] = [[]]
        chars = 0
        for i in sorted(range(len(texts)), key=lambda i: -len(texts[i])):
            if batches[-1] and chars + len(texts[i]) > BATCH_CHARS:
                batches.append([])
                chars = 0
            batches[-1].append(i)
            chars += len(texts[i])
        # As many workers as the thread budget: a rebuild in the server lowers it to leave a core to the
        # questions answered meanwhile (qa/service.py), and this path keeps to that budget too.
        n = max(1, min(self.workers, thread_budget()))
        run = self._batch_session

        def lane(mine: list[list[int]]) -> list:
            return [self.encode([texts[i] for i in b], on=run) for b in mine]

        lanes = list(self._pool.map(lane, [batches[k::n] for k in range(n)]))
        results = [lanes[i % n][i // n] for i in range(len(batches))]
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        for batch, vectors in zip(batches, results):
            out[batch] = vectors
        return out


def agrees_with_torch(encoder: OnnxEncoder, model) -> float:
    """The smallest cosine between either session's vectors and `encode()`'s on three short texts (the check
    at every load: ~0.1 s)."""
    texts = list(CHECK_TEXTS)
    theirs = model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    return float(
        min((ours * theirs).sum(axis=1).min() for ours in (encoder.encode(texts), encoder.encode_documents(texts)))
    )


def load_onnx_encoder(model, location: str, cache_dir: Path, threads: int, workers: int = 1) -> OnnxEncoder | None:
    """The model's ONNX encoder (exported into `cache_dir` if not there yet), or None (logged once) when the
    model is not the standard stack or anything fails: the caller keeps torch."""
    reason = unsupported(model)
    if reason:
        log.info("the model is encoded by torch: %s", reason)
        return None
    try:
        path = Path(cache_dir) / f"{fingerprint(model, location)}.onnx"
        encoder = None
        if path.is_file():
            try:
                encoder = OnnxEncoder(model_preprocess(model), path, threads, workers)
            except Exception as e:  # a truncated or foreign file: export again over it
                log.info("re-exporting the unloadable %s (%s)", path, type(e).__name__)
        if encoder is None:
            export(model, path)
            encoder = OnnxEncoder(model_preprocess(model), path, threads, workers)
            prune(path)
        cosine = agrees_with_torch(encoder, model)
        if cosine < 0.9999:
            raise ValueError(f"its vectors differ from torch's (cosine {cosine:.6f})")
        try:
            _saved_refs(path)
        except Exception:  # none yet, or unreadable: the next process checks the export against these
            try:
                write_refs(model, path)
            except OSError as e:
                log.info("no reference vectors written next to %s (%s): later loads check against torch", path, e)
        return encoder
    except Exception as e:  # onnx missing, export or session failure, disagreement: torch still works
        warn_once(f"ONNX Runtime encoder unavailable, encoding with torch ({type(e).__name__}: {e})")
        return None


__all__ = [
    "BATCH_CHARS",
    "PROBE_TEXTS",
    "OnnxEncoder",
    "session",
    "default_cache_dir",
    "default_threads",
    "export",
    "fingerprint",
    "load_onnx_encoder",
    "model_preprocess",
    "prune",
    "refs_path",
    "set_thread_budget",
    "thread_budget",
    "unsupported",
    "write_refs",
]
