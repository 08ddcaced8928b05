// synth editor: the page's side. Plain JavaScript, no build step, nothing loaded from elsewhere.
// The layout lives here as integer arrays (label ids as in label PNGs, 255 = don't care; instance ids as in
// 16-bit instance PNGs: thing class * 1000 + k, stuff = class id); every edit is a snapshot for undo / redo, and
// the server renders each state (debounced; a reply to an older request than the latest is dropped).
"use strict";

const $ = (id) => document.getElementById(id);
const DISPLAY = 512; // longest side of the canvas on screen, in CSS pixels
const HISTORY_LIMIT = 100;

const editor = {
  info: null,
  w: 0, h: 0, label: null, inst: null, clusters: {}, styles: {},
  tool: "brush", cls: 0, selected: null,
  history: [], pos: -1,
  renderSeq: 0, shownSeq: 0, variantSeq: 0, timer: null, inFlight: 0,
  lastClusters: {}, renders: 0, resultUrl: null,
  idle() { return this.timer === null && this.inFlight === 0 && this.shownSeq === this.renderSeq; },
};
window.editor = editor;

// ----- talking to the server -------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); if (body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function u16ToBytes(array) { // little-endian, whatever the platform
  const out = new Uint8Array(array.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < array.length; i++) view.setUint16(2 * i, array[i], true);
  return out;
}

function bytesToU16(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(2 * i, true);
  return out;
}

function presentSegments() {
  const ids = new Set();
  const seg = segmentsArray();
  for (let i = 0; i < seg.length; i++) ids.add(seg[i]);
  return ids;
}

function layoutBody() {
  const present = presentSegments();
  const keep = (table) => Object.fromEntries(Object.entries(table).filter(([id]) => present.has(Number(id))));
  return {
    width: editor.w, height: editor.h,
    label: toBase64(editor.label), inst: toBase64(u16ToBytes(editor.inst)),
    clusters: editor.info.has_clusters ? keep(editor.clusters) : {},
    styles: editor.info.uses_features ? keep(editor.styles) : {},
  };
}

// ----- status and errors -----------------------------------------------------------------------------------

function showError(message) { $("error").textContent = `error: ${message}`; $("error").hidden = false; }
function clearError() { $("error").hidden = true; $("error").textContent = ""; }
function setStatus(text) { $("status").textContent = text; }
function updateBusy() { document.body.dataset.state = editor.idle() ? "ready" : "busy"; }

// ----- classes and instance ids ------------------------------------------------------------------------------

function classInfo(id) {
  if (id === 255 && editor.info.dontcare) return { id, name: "don't care", color: "#808080", thing: false };
  return editor.info.classes[id] || { id, name: `class ${id}`, color: "#808080", thing: false };
}

function isThing(cls) {
  const stride = editor.info.instance_stride;
  if (!editor.info.uses_instances || (cls + 1) * stride > 65536) return false;
  if (classInfo(cls).thing) return true;
  for (let i = 0; i < editor.inst.length; i++) if (editor.inst[i] >= stride && Math.floor(editor.inst[i] / stride) === cls) return true;
  return false;
}

function newInstanceId(cls) {
  const stride = editor.info.instance_stride, base = cls * stride;
  let k = 0;
  for (let i = 0; i < editor.inst.length; i++) {
    const id = editor.inst[i];
    if (id >= base && id < base + stride) k = Math.max(k, id - base + 1);
  }
  return base + Math.min(k, stride - 1);
}

function stuffInstance(cls) { return cls === 255 ? 0 : cls; }
function segmentsArray() { return editor.info.segments === "label" ? editor.label : editor.inst; }

function segmentClass(segment) {
  const seg = segmentsArray(), votes = new Map();
  for (let i = 0; i < seg.length; i++) if (seg[i] === segment) votes.set(editor.label[i], (votes.get(editor.label[i]) || 0) + 1);
  let best = null, count = -1;
  for (const [cls, n] of votes) if (n > count) { best = cls; count = n; }
  return best;
}

// ----- drawing the layout ----------------------------------------------------------------------------------------

function hexToRgb(hex) { const n = parseInt(hex.slice(1), 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }

let lut = null;
function buildLut() {
  lut = new Uint8Array(256 * 3).fill(128);
  for (const c of editor.info.classes) lut.set(hexToRgb(c.color), 3 * c.id);
}

function drawLayout() {
  const canvas = $("layout-canvas"), ctx = canvas.getContext("2d");
  const { w, h, label, inst } = editor;
  const image = ctx.createImageData(w, h), px = image.data;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x, o = 4 * i, c = 3 * label[i];
      const edge = (x + 1 < w && inst[i + 1] !== inst[i]) || (y + 1 < h && inst[i + w] !== inst[i]);
      const f = edge ? 0.55 : 1;
      px[o] = lut[c] * f; px[o + 1] = lut[c + 1] * f; px[o + 2] = lut[c + 2] * f; px[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  drawOverlay();
}

function drawOverlay(rect = null) {
  const canvas = $("overlay-canvas"), ctx = canvas.getContext("2d");
  const { w, h } = editor;
  const image = ctx.createImageData(w, h), px = image.data;
  if (editor.selected !== null) {
    const seg = segmentsArray(), s = editor.selected;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (seg[i] !== s) continue;
        const border = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
          seg[i - 1] !== s || seg[i + 1] !== s || seg[i - w] !== s || seg[i + w] !== s;
        if (!border) continue;
        const o = 4 * i, light = (x + y) % 4 < 2;
        px[o] = light ? 255 : 0; px[o + 1] = light ? 255 : 0; px[o + 2] = light ? 0 : 0; px[o + 3] = 255;
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  if (rect) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
    ctx.strokeRect(rect.x0 + 0.5, rect.y0 + 0.5, rect.x1 - rect.x0, rect.y1 - rect.y0);
  }
}

function sizeCanvases() {
  const scale = DISPLAY / Math.max(editor.w, editor.h);
  const cssW = Math.round(editor.w * scale), cssH = Math.round(editor.h * scale);
  for (const id of ["layout-canvas", "overlay-canvas"]) {
    const c = $(id); c.width = editor.w; c.height = editor.h; c.style.width = `${cssW}px`; c.style.height = `${cssH}px`;
  }
  for (const id of ["result", "edge-map"]) { $(id).style.width = `${cssW}px`; $(id).style.height = `${cssH}px`; }
}

// ----- history ---------------------------------------------------------------------------------------------------

function snapshot() {
  return { w: editor.w, h: editor.h, label: editor.label.slice(), inst: editor.inst.slice(),
    clusters: { ...editor.clusters }, styles: { ...editor.styles } };
}

function restore(s) {
  const resized = s.w !== editor.w || s.h !== editor.h;
  Object.assign(editor, { w: s.w, h: s.h, label: s.label.slice(), inst: s.inst.slice(),
    clusters: { ...s.clusters }, styles: { ...s.styles } });
  if (resized) sizeCanvases();
  if (editor.selected !== null && !presentSegments().has(editor.selected)) editor.selected = null;
}

function commit() {
  editor.history = editor.history.slice(0, editor.pos + 1);
  editor.history.push(snapshot());
  if (editor.history.length > HISTORY_LIMIT) editor.history.shift();
  editor.pos = editor.history.length - 1;
  afterChange();
}

function undo() { if (editor.pos > 0) { editor.pos--; restore(editor.history[editor.pos]); afterChange(); } }
function redo() { if (editor.pos < editor.history.length - 1) { editor.pos++; restore(editor.history[editor.pos]); afterChange(); } }

function afterChange() {
  $("undo").disabled = editor.pos <= 0;
  $("redo").disabled = editor.pos >= editor.history.length - 1;
  drawLayout();
  updateInspector();
  scheduleRender();
}

// ----- rendering -------------------------------------------------------------------------------------------------

function scheduleRender() {
  if (editor.timer !== null) clearTimeout(editor.timer);
  editor.timer = setTimeout(render, 120);
  updateBusy();
}

async function render() {
  editor.timer = null;
  const seq = ++editor.renderSeq;
  editor.inFlight++;
  updateBusy();
  setStatus("rendering");
  try {
    const reply = await (await postJSON("/api/render", layoutBody())).json();
    if (seq !== editor.renderSeq) return; // a newer edit is on its way: drop this stale image
    editor.resultUrl = reply.images.synthesized_image;
    $("result").src = editor.resultUrl;
    const edge = reply.images.edge_map;
    $("edge-map").hidden = !edge;
    if (edge) $("edge-map").src = edge;
    $("result-caption").textContent = edge ? "synthesized image, edge map" : "synthesized image";
    editor.lastClusters = Object.fromEntries(Object.entries(reply.clusters).map(([k, v]) => [Number(k), v]));
    editor.shownSeq = seq;
    editor.renders++;
    setStatus(`ready (${editor.w}x${editor.h})`);
    updateInspector();
    requestVariants();
  } catch (err) {
    if (seq === editor.renderSeq) { editor.shownSeq = seq; showError(err.message); setStatus("ready"); }
  } finally {
    editor.inFlight--;
    updateBusy();
  }
}

async function requestVariants() {
  const strip = $("variants");
  const s = editor.selected;
  const count = s === null ? 0 : clusterCount(segmentClass(s));
  if (count === 0) { strip.replaceChildren(); return; }
  const seq = ++editor.variantSeq;
  editor.inFlight++;
  updateBusy();
  try {
    const body = { ...layoutBody(), instance: s, count: Math.min(6, count) };
    const reply = await (await postJSON("/api/variants", body)).json();
    if (seq !== editor.variantSeq || editor.selected !== s) return;
    strip.replaceChildren(...reply.variants.map((v) => {
      const fig = document.createElement("figure");
      fig.dataset.cluster = v.cluster;
      if (currentCluster(s) === v.cluster) fig.classList.add("current");
      const img = document.createElement("img"); img.src = v.image; img.alt = `cluster ${v.cluster}`;
      const cap = document.createElement("figcaption"); cap.textContent = `cluster ${v.cluster}`;
      fig.append(img, cap);
      fig.addEventListener("click", () => setCluster(s, v.cluster));
      return fig;
    }));
  } catch (err) {
    showError(err.message);
  } finally {
    editor.inFlight--;
    updateBusy();
  }
}

// ----- painting ----------------------------------------------------------------------------------------------------

function paintDisc(cx, cy, radius, cls, id) {
  const { w, h } = editor, r2 = radius * radius;
  const r = Math.ceil(radius);
  for (let y = Math.max(0, cy - r); y <= Math.min(h - 1, cy + r); y++) {
    for (let x = Math.max(0, cx - r); x <= Math.min(w - 1, cx + r); x++) {
      const dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy <= r2 || radius < 1) { const i = y * w + x; editor.label[i] = cls; editor.inst[i] = id; }
    }
  }
}

function paintLine(a, b, radius, cls, id) {
  const steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y)));
  for (let t = 0; t <= steps; t++) {
    paintDisc(Math.round(a.x + (b.x - a.x) * t / steps), Math.round(a.y + (b.y - a.y) * t / steps), radius, cls, id);
  }
}

function fillRegion(x, y, cls, id) {
  const { w, h, label, inst } = editor, start = y * w + x;
  const l0 = label[start], i0 = inst[start];
  if (l0 === cls && i0 === id) return false;
  const seen = new Uint8Array(w * h), stack = [start];
  seen[start] = 1;
  while (stack.length) {
    const i = stack.pop(), px = i % w, py = (i - px) / w;
    label[i] = cls; inst[i] = id;
    const next = [px > 0 ? i - 1 : -1, px < w - 1 ? i + 1 : -1, py > 0 ? i - w : -1, py < h - 1 ? i + w : -1];
    for (const j of next) if (j >= 0 && !seen[j] && label[j] === l0 && inst[j] === i0) { seen[j] = 1; stack.push(j); }
  }
  return true;
}

function fillRect(r, cls, id) {
  for (let y = r.y0; y <= r.y1; y++) for (let x = r.x0; x <= r.x1; x++) { const i = y * editor.w + x; editor.label[i] = cls; editor.inst[i] = id; }
}

function strokeTarget() {
  if (editor.tool === "eraser") { const e = editor.info.eraser; return { cls: e, id: stuffInstance(e) }; }
  const cls = editor.cls;
  return { cls, id: isThing(cls) ? newInstanceId(cls) : stuffInstance(cls) };
}

function eventPoint(event) {
  const r = $("layout-canvas").getBoundingClientRect();
  const x = Math.floor((event.clientX - r.left) / r.width * editor.w);
  const y = Math.floor((event.clientY - r.top) / r.height * editor.h);
  return { x: Math.min(editor.w - 1, Math.max(0, x)), y: Math.min(editor.h - 1, Math.max(0, y)) };
}

let drag = null;

function onPointerDown(event) {
  if (!editor.label) return;
  const p = eventPoint(event);
  $("layout-canvas").setPointerCapture(event.pointerId);
  clearError();
  if (editor.tool === "instance") { selectAt(p); return; }
  const target = strokeTarget();
  if (editor.tool === "fill") { if (fillRegion(p.x, p.y, target.cls, target.id)) commit(); return; }
  drag = { start: p, last: p, target };
  if (editor.tool === "brush" || editor.tool === "eraser") { paintLine(p, p, brushRadius(), target.cls, target.id); drawLayout(); }
}

function rectOf(a, b) { return { x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y) }; }

function onPointerMove(event) {
  if (!editor.label) return;
  const p = eventPoint(event);
  const i = p.y * editor.w + p.x;
  $("cursor-info").textContent = `${p.x},${p.y}  ${classInfo(editor.label[i]).name}  instance ${editor.inst[i]}`;
  if (!drag) return;
  if (editor.tool === "rect") { drawOverlay(rectOf(drag.start, p)); drag.last = p; return; }
  paintLine(drag.last, p, brushRadius(), drag.target.cls, drag.target.id);
  drag.last = p;
  drawLayout();
}

function onPointerUp(event) {
  if (!drag) return;
  const p = eventPoint(event);
  if (editor.tool === "rect") fillRect(rectOf(drag.start, p), drag.target.cls, drag.target.id);
  else paintLine(drag.last, p, brushRadius(), drag.target.cls, drag.target.id);
  drag = null;
  commit();
}

function brushRadius() { return Number($("brush-size").value) / 2; }

// ----- the instance tool -----------------------------------------------------------------------------------------

function selectAt(p) {
  editor.selected = segmentsArray()[p.y * editor.w + p.x];
  drawOverlay();
  updateInspector();
  requestVariants();
}

function clusterCount(cls) { return (editor.info.cluster_counts || {})[cls] || 0; }
function currentCluster(s) { return s in editor.clusters ? editor.clusters[s] : editor.lastClusters[s]; }

function updateInspector() {
  const s = editor.selected;
  $("selection").hidden = s === null;
  $("selection-none").hidden = s !== null;
  if (s === null) { $("variants").replaceChildren(); return; }
  const cls = segmentClass(s);
  $("sel-id").textContent = `${s} (${classInfo(cls).name})`;
  $("sel-class").value = String(cls);
  const count = clusterCount(cls);
  $("cluster-controls").hidden = !editor.info.uses_features;
  $("no-clusters").hidden = !editor.info.uses_features || editor.info.has_clusters;
  const select = $("sel-cluster");
  const options = [];
  for (let k = 0; k < count; k++) { const o = document.createElement("option"); o.value = String(k); o.textContent = String(k); options.push(o); }
  if (s in editor.styles) { const o = document.createElement("option"); o.value = "photo"; o.textContent = "from photo"; options.push(o); }
  select.replaceChildren(...options);
  select.value = s in editor.styles ? "photo" : String(currentCluster(s) ?? "");
  for (const id of ["sel-cluster", "random-cluster", "class-cluster"]) $(id).disabled = count === 0;
  for (const fig of $("variants").children) fig.classList.toggle("current", Number(fig.dataset.cluster) === currentCluster(s) && !(s in editor.styles));
}

function setCluster(s, k) {
  editor.clusters[s] = k;
  delete editor.styles[s];
  commit();
}

function changeClass(s, cls) {
  const seg = segmentsArray();
  const id = editor.info.segments === "label" ? cls : (isThing(cls) ? newInstanceId(cls) : stuffInstance(cls));
  for (let i = 0; i < seg.length; i++) if (seg[i] === s) { editor.label[i] = cls; editor.inst[i] = id; }
  delete editor.clusters[s];
  delete editor.styles[s];
  editor.selected = editor.info.segments === "label" ? cls : id;
  commit();
}

function setClassCluster(cls, k) {
  for (const s of presentSegments()) if (segmentClass(s) === cls) { editor.clusters[s] = k; delete editor.styles[s]; }
  commit();
}

async function styleFromPhoto(file) {
  const s = editor.selected;
  const form = new FormData();
  form.append("photo", file);
  form.append("layout", JSON.stringify(layoutBody()));
  form.append("instance", String(s));
  try {
    const reply = await (await api("/api/style", { method: "POST", body: form })).json();
    editor.styles[s] = reply.style;
    delete editor.clusters[s];
    clearError();
    commit();
  } catch (err) { showError(err.message); }
}

// ----- layouts in and out -----------------------------------------------------------------------------------------

function setLayout(reply) {
  const label = fromBase64(reply.label), inst = bytesToU16(fromBase64(reply.inst));
  const resized = reply.width !== editor.w || reply.height !== editor.h;
  Object.assign(editor, { w: reply.width, h: reply.height, label, inst, clusters: {}, styles: {}, selected: null });
  if (resized || !editor.history.length) sizeCanvases();
  commit();
}

function blankLayout() {
  const [w, h] = editor.info.default_size;
  const e = editor.info.eraser;
  setLayout({ width: w, height: h, label: toBase64(new Uint8Array(w * h).fill(e)),
    inst: toBase64(u16ToBytes(new Uint16Array(w * h).fill(stuffInstance(e)))) });
}

async function loadSample(key) {
  try { setLayout(await (await api(`/api/samples/${encodeURIComponent(key)}`)).json()); clearError(); }
  catch (err) { showError(err.message); }
}

async function upload(event) {
  event.preventDefault();
  const label = $("upload-label").files[0], inst = $("upload-inst").files[0];
  if (!label) { showError("choose a label PNG to upload"); return; }
  const form = new FormData();
  form.append("label", label);
  if (inst) form.append("inst", inst);
  try {
    setLayout(await (await api("/api/upload", { method: "POST", body: form })).json());
    clearError();
  } catch (err) { showError(err.message); } // the current layout stays
}

function saveUrl(url, name) {
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.append(a); a.click(); a.remove();
}

async function download(kind) {
  try {
    const blob = await (await postJSON(`/api/download/${kind}`, layoutBody())).blob();
    const url = URL.createObjectURL(blob);
    saveUrl(url, `${kind}.png`);
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) { showError(err.message); }
}

// ----- setting up ------------------------------------------------------------------------------------------------

function buildPalette() {
  const palette = $("palette"), select = $("sel-class");
  const classes = [...editor.info.classes];
  if (editor.info.dontcare) classes.push(classInfo(255));
  for (const c of classes) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "swatch" + (c.thing ? " thing" : ""); b.dataset.cls = c.id;
    b.title = c.thing ? `${c.name} (objects: each stroke is a new instance)` : c.name;
    const i = document.createElement("i"); i.style.background = c.color;
    b.append(i, document.createTextNode(`${c.id} ${c.name}`));
    b.addEventListener("click", () => chooseClass(c.id));
    palette.append(b);
    const o = document.createElement("option"); o.value = String(c.id); o.textContent = `${c.id} ${c.name}`; select.append(o);
  }
}

function chooseClass(cls) {
  editor.cls = cls;
  for (const b of $("palette").children) b.classList.toggle("active", Number(b.dataset.cls) === cls);
  if (editor.tool === "eraser" || editor.tool === "instance") chooseTool("brush");
}

function chooseTool(tool) {
  editor.tool = tool;
  for (const b of document.querySelectorAll("button.tool")) b.classList.toggle("active", b.dataset.tool === tool);
}

function bind() {
  for (const b of document.querySelectorAll("button.tool")) b.addEventListener("click", () => chooseTool(b.dataset.tool));
  $("brush-size").addEventListener("input", () => { $("brush-size-out").textContent = $("brush-size").value; });
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  const canvas = $("layout-canvas");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  $("sel-class").addEventListener("change", () => changeClass(editor.selected, Number($("sel-class").value)));
  $("sel-cluster").addEventListener("change", () => { const v = $("sel-cluster").value; if (v !== "photo") setCluster(editor.selected, Number(v)); });
  $("random-cluster").addEventListener("click", () => {
    const s = editor.selected, count = clusterCount(segmentClass(s)), now = currentCluster(s);
    let k = Math.floor(Math.random() * count);
    if (count > 1 && k === now) k = (k + 1 + Math.floor(Math.random() * (count - 1))) % count;
    setCluster(s, k);
  });
  $("class-cluster").addEventListener("click", () => {
    const s = editor.selected, k = currentCluster(s);
    if (k !== undefined) setClassCluster(segmentClass(s), k);
  });
  $("style-photo").addEventListener("change", () => { const f = $("style-photo").files[0]; if (f) styleFromPhoto(f); $("style-photo").value = ""; });
  $("load-sample").addEventListener("click", () => { if ($("sample").value) loadSample($("sample").value); });
  $("new-layout").addEventListener("click", blankLayout);
  $("upload-form").addEventListener("submit", upload);
  $("download-label").addEventListener("click", () => download("label"));
  $("download-inst").addEventListener("click", () => download("inst"));
  $("download-result").addEventListener("click", () => { if (editor.resultUrl) saveUrl(editor.resultUrl, "result.png"); });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); if (e.shiftKey) redo(); else undo(); return; }
    if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); redo(); return; }
    const tools = { b: "brush", f: "fill", e: "eraser", r: "rect", i: "instance" };
    if (tools[key] && !e.ctrlKey && !e.metaKey) chooseTool(tools[key]);
  });
}

async function start() {
  try {
    editor.info = await (await api("/api/info")).json();
  } catch (err) { showError(err.message); setStatus("no connection to the server"); return; }
  $("run-name").textContent = `— ${editor.info.name} (${editor.info.model})`;
  document.title = `synth editor: ${editor.info.name}`;
  buildLut();
  buildPalette();
  const firstThing = editor.info.classes.find((c) => c.thing);
  chooseClass(firstThing ? firstThing.id : 0);
  for (const key of editor.info.samples) { const o = document.createElement("option"); o.value = key; o.textContent = key; $("sample").append(o); }
  $("sample").disabled = $("load-sample").disabled = editor.info.samples.length === 0;
  bind();
  if (editor.info.samples.length) await loadSample(editor.info.samples[0]);
  else blankLayout();
}

start();
