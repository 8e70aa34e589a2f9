"""What `train.py` loads before it trains: nothing heavy beyond Lightning and Hydra, and nothing
that changes Lightning's output (one probe in a fresh interpreter checks both).

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
import json, logging, sys, warnings
import hydra.utils, lightning, omegaconf
output = lambda: [len(logging.getLogger("lightning").handlers), len(warnings.filters)]
before, packages = output(), {name.split(".")[0] for name in sys.modules}
import litplate.train
new = sorted({name.split(".")[0] for name in sys.modules} - packages)
tensorboard = "tensorboard" in {name.split(".")[0] for name in sys.modules}
import litplate.evaluate, litplate.predict, litplate.run.builders
print(json.dumps({"new": new, "tensorboard": tensorboard, "output": [before, output()]}))
"""


@pytest.mark.slow  # starts a fresh interpreter
def test_litplate_adds_no_heavy_package_nor_changes_lightnings_output():
    """Both of: litplate.train adds no heavy package to what Lightning imports; importing the
    entry modules changes nothing in Lightning's output."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probed = json.loads(result.stdout.strip().splitlines()[-1])
    # safetensors: model.safetensors, a few milliseconds; nothing else beyond litplate.
    assert set(probed["new"]) <= {"litplate", "safetensors"}, probed["new"]
    assert not probed["tensorboard"]  # the TensorBoard logger imports it on its first write
    # Lightning's console handler and the warning filters as they were: quieting is quiet()'s.
    before, after = probed["output"]
    assert after == before, result.stderr[-2000:]
    assert before[0] == 1  # lightning's own console handler, there until quiet() removes it
