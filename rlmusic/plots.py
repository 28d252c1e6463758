"""Figures without pyplot: no global matplotlib backend is chosen or changed for the process that imports us."""

from __future__ import annotations


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure drawn by the Agg canvas directly: no pyplot, so no global backend is chosen or
    changed for the process that imported us (a notebook keeps its own)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig, dpi: int = 100) -> bytes:
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
