#!/usr/bin/env bash
# The torch-level checks for a lent CUDA machine, in one call. That machine has torch and transformers but no Ray and
# no vLLM, and takes at most 64 MiB of files, so the inputs travel in .gpu/ (ignored by git):
#
#   benchmarks/gpu_checks.sh prepare        # here: SmolLM2's config + tokenizer, the small corpus' train judgments,
#                                           # the one missing wheel (bm25s, imported by disranker.data.demo)
#   benchmarks/gpu_checks.sh run OUT_DIR    # there: tests/gpu, the teacher SFT step speed on the GPU, its profile
#
# The SFT speed runs SmolLM2-135M's architecture with seeded random weights (`teacher_speed.py --random-init`: its
# weights do not fit the transfer), every mode on the same groups: fp32/bf16 × plain/packed. Its per-step losses show
# packed = plain on CUDA for the real architecture; tests/gpu shows it on the tiny teacher with gradients.
# tests/gpu/test_teacher_gpu.py launches Ray Train and is left out there (no Ray on that machine).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    python=${PYTHON:-.venv/bin/python}
    mkdir -p .gpu/smollm2 .gpu/whl
    model=$($python -c 'from disranker.models.packaged import smollm2_dir; print(smollm2_dir())')
    cp "$model"/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json} .gpu/smollm2/
    corpus=$($python -c 'from disranker.data import demo
print(demo.run(demo.DemoCorpusConfig(size="small", output_dir="outputs/demo/corpus")))')
    cp "$corpus/judgments/train.parquet" .gpu/train.parquet
    bm25s=$($python -c 'import importlib.metadata as m; print(m.version("bm25s"))')
    $python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d .gpu/whl "bm25s==$bm25s"
    du -sh .gpu
    ;;
run)
    out=${2:?usage: gpu_checks.sh run OUT_DIR}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=$PWD/platform:/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' \
        | tee -a "$out/gpu.txt"
    python3 -m pytest -q -p no:cacheprovider tests/gpu --ignore tests/gpu/test_teacher_gpu.py \
        --junitxml "$out/tests_gpu.xml" 2>&1 | tee "$out/tests_gpu.log" || true
    export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
    speed=(python3 benchmarks/teacher_speed.py --device cuda --model .gpu/smollm2 --random-init
           --judgments .gpu/train.parquet --group-size 16 --max-length 96 --row-tokens 512 --warmup 2 --steps 8)
    # The docs' CPU step (2 groups), then steps of 8 and 16 groups (128 and 256 documents); bf16 modes first, then fp32.
    ("${speed[@]}" --groups-per-step 2 --out "$out/teacher_speed_cuda_g2.json" || echo "FAILED: 2 groups") 2>&1 \
        | grep -v "^- \|LOAD REPORT"
    for groups in 8 16; do
        ("${speed[@]}" --groups-per-step $groups --modes packed-bf16 plain-bf16 plain-fp32 packed-fp32 \
            --out "$out/teacher_speed_cuda_g$groups.json" || echo "FAILED: $groups groups") 2>&1 | grep -v "^- \|LOAD REPORT"
    done
    # Where a step's time goes (fp32 vs bf16 autocast): top kernels, GPU busy time, device ops per step.
    (python3 benchmarks/gpu_step_profile.py --model .gpu/smollm2 --judgments .gpu/train.parquet || echo "FAILED: profile") \
        2>&1 | grep -v "^- \|LOAD REPORT\|Loading weights\|Writing model" | tee "$out/step_profile.txt"
    # One file for docs/results.md: the tests' outcomes and every speed run (benchmarks/results/gpu_checks.json).
    python3 - "$out" <<'PY'
import glob, json, subprocess, sys, xml.etree.ElementTree as ET
import torch, transformers
out = sys.argv[1]
tests = [{"name": f"{case.get('classname')}::{case.get('name')}",
          "outcome": next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")}
         for case in ET.parse(f"{out}/tests_gpu.xml").iter("testcase")]
driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                        text=True).stdout.strip()
json.dump({"device": torch.cuda.get_device_name(), "driver": driver, "torch": torch.__version__,
           "transformers": transformers.__version__, "tests": tests,
           "speed": sorted((json.load(open(f)) for f in glob.glob(f"{out}/teacher_speed_cuda_g*.json")),
                           key=lambda run: run["settings"]["groups_per_step"]),
           "left_out": ["tests/gpu/test_teacher_gpu.py: launches Ray Train, and the machine has no Ray"]},
          open(f"{out}/gpu_checks.json", "w"), indent=1)
PY
    ;;
*)
    echo "usage: $0 prepare | run OUT_DIR" >&2
    exit 2
    ;;
esac
