"""The console app without the api-server: what its routes answer and that pages escape."""

import pytest


class CamerasStore:
    """Stands in for DetectionStore: the argus:cameras rows only."""

    def __init__(self, rows):
        self.rows = rows

    def cameras(self):
        return dict(self.rows)


ROWS = {"gate-1": {"url": "rtsp://10.0.0.5/stream", "rate_hz": "2.0", "latitude": "48.85", "longitude": "2.35",
                   "model": "ssdlite-person"},
        "<script>alert(1)</script>": {"url": "<img src=x onerror=alert(2)>", "model": "blazeface"}}


@pytest.fixture
def client():
    from fastapi.testclient import TestClient

    from argus_airflow.console import create_app

    return TestClient(create_app(lambda: CamerasStore(ROWS), authorize=False))


def test_the_cameras_api_lists_the_table_with_coordinates(client):
    cameras = client.get("/api/cameras").json()["cameras"]
    gate = next(c for c in cameras if c["id"] == "gate-1")
    assert gate == {"id": "gate-1", "url": "rtsp://10.0.0.5/stream", "rate_hz": "2.0", "latitude": "48.85",
                    "longitude": "2.35", "model": "ssdlite-person"}
    assert client.get("/api/cameras/gate-1").json()["model"] == "ssdlite-person"


def test_an_unknown_camera_is_404_and_a_malformed_id_422_with_the_reason(client):
    missing = client.get("/api/cameras/gate-9")
    assert missing.status_code == 404 and "no camera 'gate-9'" in missing.json()["detail"]
    bad = client.get("/api/cameras/a%23b")
    assert bad.status_code == 422 and "is not valid" in bad.json()["detail"]


def test_pages_escape_what_they_show(client):
    page = client.get("/cameras")
    assert page.status_code == 200 and "gate-1" in page.text and "48.85" in page.text
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    assert "href='cameras'" in client.get("/").text  # relative: works behind a proxy path


def test_every_route_needs_an_airflow_login(airflow_home):
    from fastapi.testclient import TestClient

    from argus_airflow.console import create_app

    client = TestClient(create_app(lambda: CamerasStore(ROWS)))
    for path in ("/", "/cameras", "/api/cameras", "/api/cameras/gate-1", "/api/openapi.json"):
        assert client.get(path).status_code == 401, path


def test_the_openapi_document_lists_the_json_routes(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/cameras", "/api/cameras/{camera_id}"} <= set(paths)
    assert "/cameras" not in paths
