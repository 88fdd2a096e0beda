// The cameras page: choosing a model in a row gives the camera that model (PUT), then reloads.
"use strict";
document.querySelectorAll("#cameras tr[data-camera] select.model").forEach((pick) => {
  pick.addEventListener("change", async () => {
    const camera = pick.closest("tr").dataset.camera;
    const status = document.getElementById("status");
    const resp = await fetch("api/cameras/" + encodeURIComponent(camera) + "/model", {
      method: "PUT", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model: pick.value}),
    });
    if (resp.ok) {
      location.reload();
    } else {
      status.textContent = camera + ": " + resp.status + " " + (await resp.text()).slice(0, 300);
    }
  });
});
