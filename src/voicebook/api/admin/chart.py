"""The admin page's hourly bar chart: geometry computed here, drawn as inline SVG by ``_chart.html``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicebook.reporting.dashboard import HourBucket


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    kind: str  # "booked" | "rejected"
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    """An SVG bar chart laid out in Python, so the template only draws rectangles and text."""

    width: int
    height: int
    left: int
    top: int
    plot_width: float
    plot_height: float
    bar_width: float
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


def nice_step(peak: int, most: int = 3) -> int:
    """A tick step of 1, 2 or 5 times a power of ten giving at most ``most`` steps: 0/5/10/15, not 0/6/13."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if -(-peak // step) <= most:
                return step
        magnitude *= 10


def build_chart(
    series: list[HourBucket], zone: Any, text: dict[str, str], width: int = 960, height: int = 240
) -> Chart:
    """Two bars per hour (booked, rejected), a y axis scaled to the busiest hour, a label every 6 h."""
    left, top, bottom, right = 40, 12, 28, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1, *(b.booked for b in series), *(b.rejected for b in series)])
    peak = nice_step(peak) * -(-peak // nice_step(peak))  # the axis ends on a tick
    slot = plot_w / max(len(series), 1)
    bar_w = slot * 0.4
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    for i, bucket in enumerate(series):
        local = bucket.hour.astimezone(zone)
        x0 = left + i * slot
        for offset, kind, value in ((0.1, "booked", bucket.booked), (0.5, "rejected", bucket.rejected)):
            h = plot_h * value / peak
            title = f"{local:%d.%m. %H:00} – {text[kind]}: {value}"
            bars.append(
                Bar(round(x0 + slot * offset, 2), round(top + plot_h - h, 2), round(h, 2), kind, title)
            )
        # A label is about 70 px wide, centred on its tick: one nearer the edges would be cut off.
        if local.hour % 6 == 0 and left + 30 <= x0 <= width - right - 35:
            x_ticks.append(Tick(round(x0, 2), top + plot_h + 16, f"{local:%d.%m. %H:00}"))
    step = nice_step(peak)
    y_ticks = [
        Tick(left - 6, round(top + plot_h - plot_h * v / peak, 2), str(v)) for v in range(0, peak + 1, step)
    ]
    return Chart(width, height, left, top, plot_w, plot_h, round(bar_w, 2), bars, x_ticks, y_ticks)
