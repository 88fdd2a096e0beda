// The live wall: a grid of tiles, each the newest frame of one camera with its boxes.
// Layout (grid size, camera per tile) is the user's, saved on the server (api/layout).
"use strict";
(function () {
  const PRESETS = {"1x1": [1, 1], "2x2": [2, 2], "3x3": [3, 3], "4x3": [4, 3], "4x4": [4, 4]};
  const wall = document.getElementById("wall");
  const preset = document.getElementById("preset");
  const colsIn = document.getElementById("cols");
  const rowsIn = document.getElementById("rows");
  const status = document.getElementById("status");
  let cameras = [];
  let layout = {cols: 2, rows: 2, tiles: []};
  const shown = {};  // tile index -> capture time of the image on screen

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;  // never innerHTML: ids and classes come from outside
    if (cls) el.className = cls;
    return el;
  }

  async function api(path, options) {
    const resp = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
    if (!resp.ok) throw new Error(path + ": " + resp.status + " " + (await resp.text()).slice(0, 200));
    return resp.json();
  }

  function save() {
    // at most one camera per tile of the largest grid (8x8): what the server keeps
    const body = {cols: layout.cols, rows: layout.rows, tiles: layout.tiles.slice(0, 64)};
    api("api/layout", {method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .catch((e) => { status.textContent = "layout not saved: " + e.message; });
  }

  function build() {
    wall.style.gridTemplateColumns = "repeat(" + layout.cols + ", 1fr)";
    wall.replaceChildren();
    const n = layout.cols * layout.rows;
    for (let i = 0; i < n; i++) {
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.index = String(i);
      const pick = document.createElement("select");
      pick.append(new Option("(no camera)", ""));
      for (const cam of cameras) pick.append(new Option(cam.id, cam.id));
      pick.value = layout.tiles[i] || "";
      pick.addEventListener("change", () => {
        layout.tiles[i] = pick.value;
        delete shown[i];
        save();
        refresh();
      });
      const view = document.createElement("div");
      view.className = "view";
      const img = document.createElement("img");
      img.alt = "";
      view.append(img);
      tile.append(pick, view, text("div", "", "facts"));
      wall.append(tile);
    }
  }

  function drawBoxes(view, detections) {
    view.querySelectorAll(".box").forEach((b) => b.remove());
    for (const d of detections) {
      const [x1, y1, x2, y2] = d.box;
      const box = document.createElement("div");
      box.className = "box";
      box.append(text("span", d.class_name + " " + d.score.toFixed(2)));
      box.style.left = (x1 * 100) + "%";
      box.style.top = (y1 * 100) + "%";
      box.style.width = ((x2 - x1) * 100) + "%";
      box.style.height = ((y2 - y1) * 100) + "%";
      view.append(box);
    }
  }

  async function refresh() {
    const wanted = [...new Set(layout.tiles.slice(0, layout.cols * layout.rows).filter(Boolean))];
    if (!wanted.length) return;
    const query = wanted.map((c) => "camera=" + encodeURIComponent(c)).join("&");
    let live;
    try {
      live = (await api("api/live?" + query)).cameras;
      status.textContent = "";
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    wall.querySelectorAll(".tile").forEach((tile) => {
      const i = Number(tile.dataset.index);
      const cam = layout.tiles[i];
      const facts = tile.querySelector(".facts");
      const view = tile.querySelector(".view");
      const img = view.querySelector("img");
      const info = cam && live[cam];
      if (!info) {
        delete shown[i];  // the tile is emptied: the same frame coming back must be drawn again
        img.removeAttribute("src");
        drawBoxes(view, []);
        facts.textContent = cam ? "no frame yet" : "";
        return;
      }
      if (shown[i] !== info.capture_ts_ms) {
        shown[i] = info.capture_ts_ms;
        img.src = info.image;
        drawBoxes(view, info.detections);
      }
      const fps = info.fps == null ? "–" : info.fps.toFixed(1);
      const lat = info.latency_ms == null ? "–" : Math.round(info.latency_ms) + " ms";
      facts.textContent = info.model + " · " + fps + " frames/s · latency " + lat + " · " +
        new Date(info.capture_ts_ms).toLocaleTimeString();
    });
  }

  // the size controls say the layout's size, and the grid is built for it
  function showLayout() {
    colsIn.value = layout.cols;
    rowsIn.value = layout.rows;
    const name = layout.cols + "x" + layout.rows;
    preset.value = PRESETS[name] ? name : "custom";
    build();
  }

  function resize(cols, rows) {
    layout.cols = Math.max(1, Math.min(8, cols));
    layout.rows = Math.max(1, Math.min(8, rows));
    showLayout();
    save();
    refresh();
  }

  preset.addEventListener("change", () => {
    const size = PRESETS[preset.value];
    if (size) resize(size[0], size[1]);
  });
  colsIn.addEventListener("change", () => resize(Number(colsIn.value), layout.rows));
  rowsIn.addEventListener("change", () => resize(layout.cols, Number(rowsIn.value)));

  (async function start() {
    try {
      cameras = (await api("api/cameras")).cameras;
      layout = Object.assign(layout, await api("api/layout"));
    } catch (e) {
      status.textContent = e.message;
    }
    // a first visit: the first cameras fill the grid (a site may have a thousand)
    if (!layout.tiles.length) layout.tiles = cameras.slice(0, layout.cols * layout.rows).map((c) => c.id);
    showLayout();
    refresh();
    setInterval(refresh, 1000);
  })();
})();
