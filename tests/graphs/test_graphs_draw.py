"""``draw_graph`` writes a readable PNG; the label texts are checked exactly."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from dcl_search.cli import main
from dcl_search.graphs import draw_graph, graph_hash, preset_graph
from dcl_search.graphs._draw import (
    FROZEN_COLOR,
    TARGET_COLOR,
    TRAINED_COLOR,
    _caption,
    _edge_labels,
    _node_label,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A node's fill covers thousands of pixels; anti-aliased black text on white also passes
# through every grey, so "absent" means fewer pixels than a fraction of one node.
NODE_PIXELS = 3000
ABSENT = 1000  # dml:5 has ~700 text pixels within tolerance of the frozen grey


def _pixels_of(image: np.ndarray, color: str, tolerance: float = 0.02) -> int:
    rgb = np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) <= tolerance).sum())


def _draw(spec: str, path: Path) -> np.ndarray:
    written = draw_graph(preset_graph(spec), path)
    assert written == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    return image


def test_kd_picture_shows_the_target_and_the_frozen_teacher(tmp_path: Path) -> None:
    image = _draw("kd", tmp_path / "deep" / "er" / "kd.png")  # parent folders are created
    assert _pixels_of(image, TARGET_COLOR) > NODE_PIXELS
    assert _pixels_of(image, FROZEN_COLOR) > NODE_PIXELS
    assert _pixels_of(image, TRAINED_COLOR) < ABSENT  # kd has no trained helper


def test_independent_picture_has_no_frozen_node(tmp_path: Path) -> None:
    image = _draw("independent", tmp_path / "independent.png")
    assert _pixels_of(image, TARGET_COLOR) > NODE_PIXELS
    assert _pixels_of(image, FROZEN_COLOR) < ABSENT


def test_dml_picture_colours_trained_nodes(tmp_path: Path) -> None:
    image = _draw("dml:3", tmp_path / "dml3.png")
    assert _pixels_of(image, TRAINED_COLOR) > 2 * NODE_PIXELS
    assert _pixels_of(image, FROZEN_COLOR) < ABSENT


def test_kd_labels() -> None:
    graph = preset_graph("kd")
    assert _node_label(graph, 0) == "0: resnet32\nself: through"
    assert _node_label(graph, 1) == "1: resnet110*\nself: cutoff"
    assert _edge_labels(graph) == {(1, 0): "through"}


def test_edge_labels_skip_self_loops_and_explicit_cutoff() -> None:
    graph = preset_graph("dml:3")
    graph.edges[2, 1]["gate"] = "cutoff"
    graph.edges[1, 0]["gate"] = "linear"
    assert _edge_labels(graph) == {
        (0, 1): "through",
        (0, 2): "through",
        (1, 0): "linear",
        (1, 2): "through",
        (2, 0): "through",
    }


def test_caption_names_the_graph_and_its_hash() -> None:
    graph = preset_graph("kd")
    line = f"graph kd:resnet32,resnet110 (hash {graph_hash(graph)})"
    assert _caption(graph, None) == line
    assert _caption(graph, "teacher to student") == f"teacher to student\n{line}"


def test_show_png_writes_the_picture(tmp_path: Path, capsys) -> None:
    path = tmp_path / "pictures" / "kd.png"
    assert main(["show", "kd", "--png", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gates (row = source" in out
    assert out.startswith("graph kd:resnet32,resnet110 (2 nodes, hash ")
    assert out.strip().splitlines()[-1] == f"wrote {path}"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_show_counts_one_node_in_the_singular(capsys) -> None:
    assert main(["show", "independent"]) == 0
    assert capsys.readouterr().out.startswith("graph independent:resnet32 (1 node, hash ")


def test_warm_drawing_loads_matplotlib_and_writes_no_file(tmp_path: Path) -> None:
    """The search's warm-up before its export: a fresh process has no matplotlib until then,
    and nothing lands in the folder it runs in."""
    code = (
        "import sys\n"
        "from dcl_search.graphs import warm_drawing\n"
        "assert 'matplotlib.figure' not in sys.modules\n"
        "warm_drawing()\n"
        "print(sorted(m for m in ('matplotlib.figure', 'matplotlib.backends.backend_agg') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['matplotlib.backends.backend_agg', 'matplotlib.figure']"
    assert list(tmp_path.iterdir()) == []


def test_pictures_are_drawn_one_at_a_time(tmp_path: Path) -> None:
    """The export waits while the search's warm-up thread imports matplotlib and draws:
    two threads importing the same modules can see each other's half-initialised ones."""
    from dcl_search.graphs import _draw

    path = tmp_path / "kd.png"
    drawing = threading.Thread(target=draw_graph, args=(preset_graph("kd"), path))
    with _draw._DRAWING:  # a warm-up under way
        drawing.start()
        drawing.join(0.5)
        assert drawing.is_alive() and not path.exists()
    drawing.join(30)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
