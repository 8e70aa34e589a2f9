"""What `train.py` loads before it trains: nothing heavy beyond Lightning and Hydra.

`import lightning` already brings matplotlib, scipy and rich (torchmetrics imports matplotlib and
scipy whenever they are installed), so that `import litplate.train` does not import matplotlib
cannot hold; what can is that litplate itself adds no package of note, and that TensorBoard's
writer is loaded only when a logger first writes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.project import ROOT

PROBE = """
import json, sys
import hydra.utils, lightning, omegaconf
before = {name.split(".")[0] for name in sys.modules}
import litplate.train
after = {name.split(".")[0] for name in sys.modules}
print(json.dumps({"new": sorted(after - before), "tensorboard": "tensorboard" in after}))
"""


@pytest.mark.slow
def test_litplate_train_adds_no_heavy_package_to_what_lightning_imports():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    # safetensors: model.safetensors, a few milliseconds; nothing else beyond litplate.
    assert set(imported["new"]) <= {"litplate", "safetensors"}, imported["new"]
    assert not imported["tensorboard"]  # the TensorBoard logger imports it on its first write
