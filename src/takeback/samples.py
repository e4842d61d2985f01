"""Real sample photos that ship inside scikit-image (used by the demo and tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["SAMPLE_PHOTOS", "UNREGISTERED_PHOTO", "sample_photo"]

#: Real photos the demo registers (file names in ``skimage.data_dir``).
SAMPLE_PHOTOS: Final = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
)
#: A real photo that is never registered: it must not match.
UNREGISTERED_PHOTO: Final = "hubble_deep_field.jpg"


def sample_photo(name: str) -> Path:
    """Path of a photo shipped with scikit-image.

    Examples
    --------
    >>> sample_photo("astronaut.png").name
    'astronaut.png'
    """
    import skimage.data

    path = Path(skimage.data.data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image does not ship {name}; reinstall scikit-image")
    return path
