// The map: the offline base map (or a tile server's, if one is set), each camera and the
// ground it sees. Every text from the data goes through textContent, never HTML.
(async () => {
  const el = document.getElementById("map");
  const status = document.getElementById("status");
  const map = L.map(el, {maxZoom: 21});
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, {maxZoom: 21, maxNativeZoom: 19}).addTo(map);
  } else {
    try {
      const base = await (await fetch("vendor/basemap/map.geo.json")).json();
      L.geoJSON(base, {interactive: false, style: {color: "#999", weight: 1, fillColor: "#ece8dc", fillOpacity: 1}})
        .addTo(map);
    } catch (e) {
      status.textContent = "no offline base map: " + e.message;
    }
  }
  let data;
  try {
    const resp = await fetch("api/map/cameras");
    if (!resp.ok) throw new Error(resp.status + " " + (await resp.text()));
    data = await resp.json();
  } catch (e) {
    status.textContent = "cameras unavailable: " + e.message;
    map.setView([20, 0], 2);
    return;
  }
  const label = (p) => {
    const div = document.createElement("div");
    div.textContent = p.camera + (p.model ? " · " + p.model : "") +
      (p.mapping_error ? " · ground mapping unusable: " + p.mapping_error : "");
    return div;
  };
  const layer = L.geoJSON(data, {
    // the style applies to the points' circles too, before they are drawn: it sets both classes
    style: (f) => f.properties.kind === "camera"
      ? {className: "argus-camera", color: "#d9480f", weight: 2, fillOpacity: 0.9}
      : {className: "argus-view", color: "#d9480f", weight: 1, fillOpacity: 0.15},
    pointToLayer: (f, at) => L.circleMarker(at, {radius: 6}),
    onEachFeature: (f, l) => l.bindTooltip(label(f.properties)),
  }).addTo(map);
  // the tracks of the last hour, a colour per track (global ids come with cross-camera association)
  const since = Date.now() - 3600 * 1000;
  try {
    const resp = await fetch("api/tracks.geojson?since_ms=" + since);
    if (!resp.ok) throw new Error(resp.status + " " + (await resp.text()));
    const tracks = await resp.json();
    L.geoJSON(tracks, {
      style: (f) => ({className: "argus-track", weight: 3, color: "hsl(" + (f.properties.track_id * 67) % 360 + ",80%,40%)"}),
      onEachFeature: (f, l) => {
        const div = document.createElement("div");
        const p = f.properties;
        div.textContent = p.camera + " · track " + p.track_id + " · " + p.class_name + " · " + p.sightings +
          " sightings, " + new Date(p.first_ms).toLocaleTimeString() + "–" + new Date(p.last_ms).toLocaleTimeString();
        l.bindTooltip(div);
      },
    }).addTo(map);
    el.dataset.tracks = String(tracks.features.length);
  } catch (e) {
    status.textContent = "tracks unavailable: " + e.message;
  }
  const cameras = data.features.filter((f) => f.properties.kind === "camera").length;
  // ?camera=ID: that camera's point and view; else every camera
  const focus = new URLSearchParams(location.search).get("camera");
  const mine = focus ? L.geoJSON({type: "FeatureCollection",
                                   features: data.features.filter((f) => f.properties.camera === focus)}) : null;
  if (mine && mine.getLayers().length) {
    map.fitBounds(mine.getBounds().pad(0.5), {maxZoom: 20});
  } else if (cameras) {
    map.fitBounds(layer.getBounds().pad(0.3), {maxZoom: 19});
  } else {
    map.setView([20, 0], 2);
    status.textContent = "no camera has coordinates (cameras.yaml latitude / longitude, argus cameras import)";
  }
  el.dataset.cameras = String(cameras);  // what is drawn, for tests and scripts
})();
