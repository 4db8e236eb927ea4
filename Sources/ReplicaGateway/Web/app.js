// Replica Link's web interface: plain JavaScript over the public REST API, no build step. The session token lives in
// sessionStorage; every request carries it as the API asks (a bearer header, or the `token` query parameter where a
// browser cannot send headers: images, downloads, the 3D viewer).
"use strict";

const state = { token: sessionStorage.getItem("replica.token"), projects: [], current: null, poll: null, viewer: null };
const $ = (id) => document.getElementById(id);

// MARK: The API

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  let payload;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (response.status === 401 && path !== "/api/auth") { logOut(); throw new APIError(401, "Please log in again"); }
  if (!response.ok) throw new APIError(response.status, data.error || response.statusText);
  return data;
}

/** A URL for what the browser fetches itself (img, a, the viewer), the token in its query. */
function withToken(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
}

/** Uploads files as multipart/form-data with per-file and total progress rows in `container`. */
function upload(url, files, fields, container) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    for (const file of files) form.append("images", file, file.name);
    container.innerHTML = "";
    const total = files.reduce((sum, file) => sum + file.size, 0);
    const rows = files.map((file) => {
      const row = document.createElement("div");
      row.className = "upload";
      row.innerHTML = `<span></span><progress max="1" value="0"></progress>`;
      row.firstChild.textContent = file.name;
      container.appendChild(row);
      return row.querySelector("progress");
    });
    const all = document.createElement("div");
    all.className = "upload total";
    all.innerHTML = `<span>All ${files.length} photos</span><progress max="1" value="0"></progress>`;
    container.appendChild(all);
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Authorization", "Bearer " + state.token);
    request.upload.onprogress = (event) => {
      // The form's bytes arrive in file order: each file's bar fills as the sent bytes pass it.
      let sent = event.loaded * total / Math.max(event.total, 1), start = 0;
      files.forEach((file, index) => {
        rows[index].value = file.size ? Math.min(1, Math.max(0, (sent - start) / file.size)) : 1;
        start += file.size;
      });
      all.querySelector("progress").value = event.loaded / Math.max(event.total, 1);
    };
    request.onload = () => {
      const data = request.responseText ? JSON.parse(request.responseText) : {};
      if (request.status >= 200 && request.status < 300) {
        rows.forEach((bar) => { bar.value = 1; });
        all.querySelector("progress").value = 1;
        resolve(data);
      } else {
        reject(new APIError(request.status, data.error || request.statusText));
      }
    };
    request.onerror = () => reject(new APIError(0, "The upload was interrupted"));
    request.send(form);
  });
}

// MARK: Screens

function show(screen) {
  for (const id of ["login", "projects", "create", "project"]) $(id).hidden = id !== screen;
  $("logout").hidden = screen === "login";
  if (screen !== "project") disposeViewer();
}

function logOut() {
  state.token = null;
  sessionStorage.removeItem("replica.token");
  clearTimeout(state.poll);
  show("login");
}

function notify(error) {
  alert(error.message || String(error));
}

function route() {
  if (!state.token) return show("login");
  const match = location.hash.match(/^#project\/([0-9a-f-]+)$/);
  if (location.hash === "#new") { show("create"); return; }
  if (match) { openProject(match[1]); return; }
  show("projects");
  refresh();
}

// MARK: The list

async function refresh() {
  clearTimeout(state.poll);
  let interval = 10;
  try {
    const [list, status] = await Promise.all([api("GET", "/api/projects"), api("GET", "/api/status")]);
    state.projects = list.projects;
    interval = status.pollInterval || 10;
    renderList();
    if (state.current) renderProject(list.projects.find((p) => p.id === state.current));
  } catch (error) {
    if (error.status !== 401) console.error(error);
  }
  if (state.token) state.poll = setTimeout(refresh, interval * 1000);
}

function renderList() {
  const list = $("project-list");
  list.innerHTML = "";
  $("empty").hidden = state.projects.length > 0;
  for (const project of state.projects) {
    const item = document.createElement("li");
    item.className = "project-item";
    item.dataset.id = project.id;
    item.innerHTML = `<a><strong></strong><span class="status"></span></a>
      <progress max="1"></progress><small class="quiet"></small>`;
    item.querySelector("a").href = "#project/" + project.id;
    item.querySelector("strong").textContent = project.name;
    const status = item.querySelector(".status");
    status.textContent = project.status;
    status.dataset.status = project.status;
    item.querySelector("progress").value = project.progress;
    item.querySelector("small").textContent = [
      `${project.imageCount} photo${project.imageCount === 1 ? "" : "s"}`,
      project.processingStage, project.hasGlb ? `model: ${project.modelDetail}` : "", project.errorMessage,
    ].filter(Boolean).join(" · ");
    list.appendChild(item);
  }
}

// MARK: One project

async function openProject(id) {
  state.current = id;
  show("project");
  try {
    renderProject(await api("GET", "/api/projects/" + id));
    loadThumbnails(id);
    refresh();
  } catch (error) {
    if (error.status === 404) { location.hash = ""; return; }
    notify(error);
  }
}

function renderProject(project) {
  if (!project) { location.hash = ""; return; }
  $("project-name").textContent = project.name;
  const status = $("project-status");
  status.textContent = project.status;
  status.dataset.status = project.status;
  $("project-stage").textContent = project.processingStage;
  $("project-progress").value = project.progress;
  $("project-error").textContent = project.errorMessage;
  const busy = project.status === "processing" || project.status === "queued";
  $("cancel").hidden = !busy;
  $("compute").disabled = busy;
  $("rename").disabled = busy;
  $("image-count").textContent = `(${project.imageCount})`;
  $("download-images").href = withToken(`/api/projects/${project.id}/images/download`);
  $("model").hidden = !project.hasGlb;
  for (const format of ["glb", "usdz", "obj", "fbx"]) {
    const link = $("download-" + format);
    link.href = withToken(`/api/projects/${project.id}/download?format=${format}`);
    link.hidden = format === "usdz" ? !project.hasModel : !project.hasGlb;
  }
  const version = project.id + ":" + project.modelDetail + ":" + project.status;
  if (project.hasGlb && state.viewerVersion !== version) {
    state.viewerVersion = version;
    showModel(project.id);
  }
}

async function loadThumbnails(id) {
  const grid = $("thumbnails");
  grid.innerHTML = "";
  const { images } = await api("GET", `/api/projects/${id}/images`);
  for (const image of images) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = image.fileName;
    img.title = image.fileName;
    img.src = withToken(`/api/projects/${id}/images/${encodeURIComponent(image.fileName)}`);
    grid.appendChild(img);
  }
}

// MARK: The 3D view

function disposeViewer() {
  if (!state.viewer) return;
  cancelAnimationFrame(state.viewer.frame);
  state.viewer.renderer.dispose();
  $("viewer").innerHTML = "";
  state.viewer = null;
  state.viewerVersion = null;
}

function showModel(id) {
  disposeViewer();
  const container = $("viewer");
  $("viewer-state").textContent = "Loading the model…";
  if (!window.THREE || !THREE.GLTFLoader) { $("viewer-state").textContent = "three.js is not installed"; return; }
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  // Colours out in sRGB, as the textures came in: three.js r111 (Debian's) calls it gammaOutput, later ones
  // outputEncoding.
  renderer.gammaOutput = true;
  renderer.gammaFactor = 2.2;
  renderer.outputEncoding = THREE.sRGBEncoding;
  renderer.setClearColor(0x20242a);
  container.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  // The photos' own light is baked into the colours: soft, even light shows them as taken.
  scene.add(new THREE.AmbientLight(0xffffff, 0.5));
  scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 1.0));
  const sun = new THREE.DirectionalLight(0xffffff, 0.6);
  sun.position.set(1, 2, 1.5);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, 1, 0.001, 1000);
  const controls = new THREE.OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  const viewer = { renderer, scene, camera, controls, frame: 0, loaded: false };
  state.viewer = viewer;
  const resize = () => {
    const width = container.clientWidth, height = Math.max(240, Math.round(width * 0.75));
    renderer.setSize(width, height);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
  };
  resize();
  window.addEventListener("resize", resize);
  new THREE.GLTFLoader().load(withToken(`/api/viewer/projects/${id}/model`), (gltf) => {
    if (state.viewer !== viewer) return;
    scene.add(gltf.scene);
    // Frame the model: look at its centre from a little above, far enough to see it whole.
    const box = new THREE.Box3().setFromObject(gltf.scene);
    const centre = box.getCenter(new THREE.Vector3()), size = box.getSize(new THREE.Vector3()).length();
    controls.target.copy(centre);
    camera.position.copy(centre).add(new THREE.Vector3(0, size * 0.35, size * 1.1));
    camera.near = size / 100;
    camera.far = size * 100;
    camera.updateProjectionMatrix();
    viewer.loaded = true;
    $("viewer-state").textContent = "Drag to turn, pinch or scroll to zoom.";
  }, undefined, (error) => {
    $("viewer-state").textContent = "The model could not be loaded: " + (error.message || error);
  });
  const animate = () => {
    viewer.frame = requestAnimationFrame(animate);
    controls.update();
    renderer.render(scene, camera);
  };
  animate();
}

/** For tests: how many of the view's pixels are not the background, once the model has loaded. */
window.replicaViewerCoverage = function () {
  const viewer = state.viewer;
  if (!viewer || !viewer.loaded) return -1;
  viewer.renderer.render(viewer.scene, viewer.camera);
  const source = viewer.renderer.domElement, canvas = document.createElement("canvas");
  canvas.width = source.width;
  canvas.height = source.height;
  const context = canvas.getContext("2d");
  context.drawImage(source, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let covered = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (Math.abs(pixels[i] - 0x20) + Math.abs(pixels[i + 1] - 0x24) + Math.abs(pixels[i + 2] - 0x2a) > 24) covered++;
  }
  return covered / (pixels.length / 4);
};

// MARK: Events

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const { token } = await api("POST", "/api/auth", { pin: $("pin").value });
    state.token = token;
    sessionStorage.setItem("replica.token", token);
    $("pin").value = "";
    route();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", logOut);
$("new-project").addEventListener("click", () => { location.hash = "#new"; });
for (const button of document.querySelectorAll(".back")) {
  button.addEventListener("click", () => { state.current = null; location.hash = ""; });
}

let chosen = [];
function choose(files) {
  chosen = Array.from(files);
  $("create-drop").querySelector("p").textContent = chosen.length
    ? `${chosen.length} photo${chosen.length === 1 ? "" : "s"} chosen` : "Drop photos here, or";
}
$("create-files").addEventListener("change", (event) => choose(event.target.files));
$("create-drop").addEventListener("dragover", (event) => {
  event.preventDefault();
  event.currentTarget.classList.add("over");
});
$("create-drop").addEventListener("dragleave", (event) => event.currentTarget.classList.remove("over"));
$("create-drop").addEventListener("drop", (event) => {
  event.preventDefault();
  event.currentTarget.classList.remove("over");
  choose(event.dataTransfer.files);
});
$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen.length) return notify(new Error("Choose some photos first"));
  $("create-submit").disabled = true;
  try {
    const name = $("create-name").value.trim();
    const created = await upload("/api/projects", chosen, name ? { name } : {}, $("create-progress"));
    choose([]);
    $("create-name").value = "";
    // A moment to see every bar full, then the new project.
    setTimeout(() => { location.hash = "#project/" + created.id; }, 1200);
  } catch (error) {
    notify(error);
  } finally {
    $("create-submit").disabled = false;
  }
});

$("add-files").addEventListener("change", async (event) => {
  const files = Array.from(event.target.files);
  event.target.value = "";
  if (!files.length) return;
  try {
    await upload(`/api/projects/${state.current}/images`, files, {}, $("add-progress"));
    openProject(state.current);
  } catch (error) {
    notify(error);
  }
});

$("rename").addEventListener("click", async () => {
  const project = state.projects.find((p) => p.id === state.current);
  const name = prompt("New name for the project", project ? project.name : "");
  if (!name) return;
  try { await api("PUT", "/api/projects/" + state.current, { name }); refresh(); } catch (error) { notify(error); }
});

$("delete").addEventListener("click", async () => {
  const project = state.projects.find((p) => p.id === state.current);
  if (!confirm(`Delete ${project ? project.name : "this project"}? Its photos and model are removed from the disk.`)) {
    return;
  }
  try {
    await api("DELETE", `/api/projects/${state.current}?deleteFiles=true`);
    state.current = null;
    location.hash = "";
  } catch (error) {
    notify(error);
  }
});

$("cancel").addEventListener("click", async () => {
  try { await api("POST", `/api/projects/${state.current}/cancel`); refresh(); } catch (error) { notify(error); }
});

$("detail").addEventListener("change", () => { $("custom").hidden = $("detail").value !== "custom"; });
$("textureFormat").addEventListener("change", () => {
  $("jpeg-quality").hidden = $("textureFormat").value !== "jpeg";
});

$("compute-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const options = {
    detail: $("detail").value, sampleOrdering: $("sampleOrdering").value,
    featureSensitivity: $("featureSensitivity").value, meshPrimitive: $("meshPrimitive").value,
    isObjectMaskingEnabled: $("isObjectMaskingEnabled").checked,
  };
  if (options.detail === "custom") {
    options.maximumPolygonCount = parseInt($("maximumPolygonCount").value, 10);
    options.maximumTextureDimension = $("maximumTextureDimension").value;
    options.textureFormat = $("textureFormat").value;
    if (options.textureFormat === "jpeg") {
      options.jpegCompressionQuality = parseFloat($("jpegCompressionQuality").value);
    }
    options.outputTextureMaps = Array.from(document.querySelectorAll(".maps input:checked")).map((box) => box.value);
  }
  try {
    await api("POST", `/api/projects/${state.current}/compute`, options);
    $("compute-panel").open = false;
    refresh();
  } catch (error) {
    notify(error);
  }
});

window.addEventListener("hashchange", route);
route();
