"""The browser files the console serves that are not ours: Leaflet (the map page) and an
offline base map (countries' land, from Natural Earth via the ``@geo-maps`` npm package).
The set-up fetches them from npm once, checksummed, into ``<cache>/web/``; nothing is
fetched from outside the machine when a page is shown.
"""

from __future__ import annotations

from pathlib import Path

from argus.config import ArgusConfig

#: npm package -> {file in its tarball: sha256}; each package's files land in one folder,
#: keyed by the folder under ``<cache>/web/`` (Leaflet's CSS finds its icons in ``images/``)
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "leaflet": ("leaflet@1.9.4", {
        "package/dist/leaflet.js": "db49d009c841f5ca34a888c96511ae936fd9f5533e90d8b2c4d57596f4e5641a",
        "package/dist/leaflet.css": "a7837102824184820dfa198d1ebcd109ff6d0ff9a2672a074b9a1b4d147d04c6",
        "package/LICENSE": "53e8dc25862014e4324741ca18fbe3611e11d42ef69f59f86ea8c5389647d4cb",
    }),
    "leaflet/images": ("leaflet@1.9.4", {
        "package/dist/images/marker-icon.png": "574c3a5cca85f4114085b6841596d62f00d7c892c7b03f28cbfa301deb1dc437",
        "package/dist/images/marker-icon-2x.png": "00179c4c1ee830d3a108412ae0d294f55776cfeb085c60129a39aa6fc4ae2528",
        "package/dist/images/marker-shadow.png": "264f5c640339f042dd729062cfc04c17f8ea0f29882b538e3848ed8f10edb4da",
        "package/dist/images/layers.png": "1dbbe9d028e292f36fcba8f8b3a28d5e8932754fc2215b9ac69e4cdecf5107c6",
        "package/dist/images/layers-2x.png": "066daca850d8ffbef007af00b06eac0015728dee279c51f3cb6c716df7c42edf",
    }),
    "basemap": ("@geo-maps/countries-land-10km@0.6.0", {
        "package/map.geo.json": "37f03b2366348adc2562780b5f1d7055a9f27196642954c2d7315e9130e774a3",
    }),
}


def web_dir(cfg: ArgusConfig | None = None) -> Path:
    return (cfg or ArgusConfig()).cache_dir / "web"


def assets_ready(cfg: ArgusConfig | None = None) -> bool:
    root = web_dir(cfg)
    return all((root / folder / Path(member).name).exists()
               for folder, (_, members) in PACKAGES.items() for member in members)


def fetch_web_assets(cfg: ArgusConfig | None = None) -> Path:
    """Fetch (once) and verify every package's files; returns the folder they are in."""
    from argus.detect.fetch import npm_pack_files

    root = web_dir(cfg)
    for folder, (spec, members) in PACKAGES.items():
        npm_pack_files(spec, members, root / folder)
    return root


def asset_path(relative: str, cfg: ArgusConfig | None = None) -> Path | None:
    """The file of a served name (``leaflet/leaflet.js``), None if it is not one of ours."""
    known = {f"{folder}/{Path(m).name}" for folder, (_, members) in PACKAGES.items() for m in members}
    if relative not in known:
        return None
    path = web_dir(cfg) / relative
    return path if path.exists() else None
