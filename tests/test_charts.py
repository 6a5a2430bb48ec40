"""The Pillow charts: training loss curves read back from a real dvclive log."""
import numpy as np
from PIL import Image

from pipeline.common.charts import COLOURS, loss_curves


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_loss_curves_draw_each_logged_loss_where_its_values_lie(tmp_path):
    from dvclive import Live

    with Live(str(tmp_path / "logs"), dvcyaml=False, save_dvc_exp=False) as live:
        for step in range(100, 1100, 100):
            live.step = step
            live.log_metric("train/loss_D_A", 1.0)  # flat at 1
            live.log_metric("train/loss_G_A", 2.0 - step / 1000)  # 1.9 down to 1.0
            live.log_metric("train/lr", 0.5)
            live.next_step()
    out = tmp_path / "losses.png"
    loss_curves(tmp_path / "logs" / "plots" / "metrics" / "train", out, "cyclegan losses", width=720, height=380)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (380, 720, 3)
    flat, falling = (np.all(image == rgb(c), axis=-1) for c in COLOURS[1:3])  # D_A, G_A: file-name order
    plot = slice(80, 680)  # inside the axes, clear of the legend
    rows = np.flatnonzero(flat[:, plot].sum(axis=1) > 400)  # a horizontal line across the plot
    assert len(rows) and rows.max() - rows.min() <= 2
    falling_rows = [np.flatnonzero(falling[:280, col]).mean() for col in (140, 400, 695)]  # image rows grow downwards
    assert falling_rows[0] < falling_rows[1] < falling_rows[2]
    assert abs(falling_rows[2] - rows.mean()) <= 3  # both end at 1.0
    others = {tuple(c) for c in image.reshape(-1, 3)} & {rgb(c) for c in COLOURS[3:]}
    assert not others  # two curves: the lr is no loss
