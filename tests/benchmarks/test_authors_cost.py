"""benchmarks/authors_cost.py on a tiny network in the authors' layout: every row, counted calls."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "patch_size": [2, 2], "depths": [1, 1], "widths": [24, 48], "joint": [True, True],
    "self_attns": [{"type": "neighborhood", "d_head": 8, "kernel_size": 5}, {"type": "global", "d_head": 8}],
    "mapping_width": 32, "img_resolution": 16, "img_channels": 3, "label_dim": 10,
}


def test_authors_cost_prints_every_row_with_its_network_calls(tmp_path, capsys):
    """The parent runs here (its workers, one per configuration and one for the breakdown, are
    fresh processes with one thread each)."""
    spec = importlib.util.spec_from_file_location("authors_cost", ROOT / "benchmarks" / "authors_cost.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "cost.json"
    script.main(["--configs", str(config), "--repeats", "1", "--threads", "1", "--breakdown", str(config),
                 "--json", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert "### The authors' checkpoints: cost per image" in lines
    assert any(line.startswith("Machine: ") and "torch threads" in line for line in lines)
    assert any(line.startswith("Code: commit ") for line in lines)
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| tiny | ")]
    rows = {(r[1], r[2], r[3]): r for r in table if len(r) == 11}
    expected = {  # (method, operator, class / CFG) → (steps, evaluations, network calls)
        **{("one-call", op, "class 9"): ("—", "1", "1") for op in ("motion-blur-folded-spectrum", "matrix", "inpaint-patches")},
        **{("one-call", op, "class 9, CFG 2"): ("—", "1", "2") for op in ("motion-blur-folded-spectrum", "matrix", "inpaint-patches")},
        ("dpm15", "motion-blur-folded-spectrum", "class 9"): ("15", "15", "15"),
        ("dpm15", "motion-blur-folded-spectrum", "class 9, CFG 2"): ("15", "15", "30"),
        ("heun63", "motion-blur-folded-spectrum", "class 9"): ("32", "63", "63"),
        ("heun63", "motion-blur-folded-spectrum", "class 9, CFG 2"): ("32", "63", "126"),
    }
    assert set(rows) == set(expected)
    for key, (steps, evaluations, calls) in expected.items():
        assert tuple(rows[key][4:7]) == (steps, evaluations, calls), key
        assert float(rows[key][7]) >= 0 and rows[key][9] == "1"
    memory = next(line for line in lines if line.startswith("| tiny | 0.1 M |"))
    assert len(memory.strip("|").split("|")) == 7
    assert any(line.startswith("| feed-forward |") for line in lines)
    assert sum(line.startswith("| `aten::") for line in lines) == 8
    numbers = json.loads(out.read_text())
    assert len(numbers["rows"]) == 10 and not any(r["extrapolated"] for r in numbers["rows"])
    assert numbers["targets"] == []  # the targets are ImageNet64's
