// The zoo's static site: every model's tasks run in this browser with onnxruntime-web. Nothing here names a model:
// what a task does comes from its WebTask (models/MODEL.json) and its graphs' tensor specs (models/MODEL/manifest.json):
// shapes, value ranges and layouts drive pre- and post-processing. Kinds: sample, image-to-image, interpolate,
// arithmetic; any other task is listed with the command that runs it in Python.

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
let ort = null;
const runtime = { ep: "wasm", threads: 1, isolated: false, version: "?", webgpu: "not checked" };
const models = new Map();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

const firstLine = (text) => String(text || "").split("\n")[0].slice(0, 300);

// --- seeded randomness -------------------------------------------------------------------------------------------
// mulberry32 and Box-Muller: the same seed gives the same faces in every browser, not the ones torch's generator
// gives in Python (a different random number generator).
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(seed, count) {
  const uniform = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

// --- the runtime -------------------------------------------------------------------------------------------------

async function loadRuntime(site) {
  const info = site.runtime;
  ort = await import(new URL(info.module, location.href).href);
  ort.env.wasm.wasmPaths = new URL(info.wasm_paths, location.href).href;
  runtime.version = info.version;
  runtime.isolated = self.crossOriginIsolated === true;
  const asked = Number(params.get("threads") || 0);
  const cores = navigator.hardwareConcurrency || 1;
  // threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages
  runtime.threads = runtime.isolated ? (asked > 0 ? asked : Math.min(4, cores)) : 1;
  ort.env.wasm.numThreads = runtime.threads;
  let adapter = null;
  if (navigator.gpu) {
    try { adapter = await navigator.gpu.requestAdapter(); } catch { adapter = null; }
  }
  runtime.webgpu = adapter ? "available" : "not available";
  runtime.ep = adapter && info.variant === "webgpu" && params.get("ep") !== "wasm" ? "webgpu" : "wasm";
  const engine = runtime.ep === "webgpu" ? "WebGPU" : `WASM SIMD, ${runtime.threads} thread(s)`;
  const gpuNote = info.variant === "webgpu" ? `WebGPU ${runtime.webgpu}`
    : `WebGPU ${runtime.webgpu} (this site ships the WASM build; export with --web-webgpu for WebGPU)`;
  $("runtime").textContent = `onnxruntime-web ${runtime.version}: ${engine}; ${gpuNote}.`;
  $("isolation").textContent = runtime.isolated
    ? "Cross-origin isolated: WASM runs on several threads."
    : "This page is not cross-origin isolated, so WASM runs on one thread. For threads a static host must send "
      + "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp with every file "
      + "(`zoo web serve DIR` does; the _headers file in this folder sets them on Netlify and Cloudflare Pages).";
}

async function sha256(bytes) {
  if (!crypto.subtle) return null;  // only secure contexts have it; then the size check alone remains
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

class Model {
  constructor(name, manifest, card) {
    this.name = name;
    this.manifest = manifest;
    this.card = card;
    this.sessions = new Map();
    this.precision = {};
  }

  graph(name) {
    const entry = this.manifest.graphs[name];
    if (!entry) throw new Error(`graph ${name} is not in models/${this.name}/manifest.json`);
    return entry;
  }

  // precision -> file record; fp16/int8 only where they keep float32 inputs and outputs
  files(name) {
    const entry = this.graph(name);
    const files = { fp32: entry };
    for (const precision of ["fp16", "int8"]) {
      const record = entry[precision];
      if (record && record.file && (record.io_dtype || "float32") === "float32") files[precision] = record;
    }
    return files;
  }

  session(name) {
    const precision = this.precision[name] || "fp32";
    const key = `${name}/${precision}`;
    if (!this.sessions.has(key)) {
      const loading = this.load(name, precision);
      loading.catch(() => this.sessions.delete(key));
      this.sessions.set(key, loading);
    }
    return this.sessions.get(key);
  }

  async load(name, precision) {
    const record = this.files(name)[precision];
    const url = `models/${this.name}/${record.file}`;
    let response;
    try { response = await fetch(url); } catch (failure) {
      throw new Error(`graph ${name}: ${url} could not be fetched (${failure.message})`);
    }
    if (!response.ok) throw new Error(`graph ${name}: ${url} is missing (HTTP ${response.status}); export the model again`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const digest = await sha256(bytes);
    if ((digest && digest !== record.sha256) || (record.bytes && bytes.length !== record.bytes)) {
      throw new Error(`graph ${name}: ${url} is damaged (${bytes.length} bytes, sha256 ${(digest || "?").slice(0, 12)}…; `
        + `the manifest lists ${record.bytes} bytes, ${record.sha256.slice(0, 12)}…); export the model again`);
    }
    try {
      return await ort.InferenceSession.create(bytes, { executionProviders: [runtime.ep], graphOptimizationLevel: "all" });
    } catch (failure) {
      throw new Error(`graph ${name}: onnxruntime-web cannot load ${url} (${firstLine(failure.message)})`);
    }
  }

  // inputs: [{data: Float32Array, dims}] in the graph's input order; outputs likewise, in its output order
  async run(name, inputs) {
    const entry = this.graph(name);
    const session = await this.session(name);
    const feeds = {};
    entry.inputs.forEach((spec, i) => { feeds[spec.name] = new ort.Tensor("float32", inputs[i].data, inputs[i].dims); });
    let results;
    try { results = await session.run(feeds); } catch (failure) {
      throw new Error(`graph ${name}: ${firstLine(failure.message)}`);
    }
    return entry.outputs.map((spec) => {
      const tensor = results[spec.name];
      return { data: tensor.data instanceof Float32Array ? tensor.data : Float32Array.from(tensor.data), dims: tensor.dims };
    });
  }
}

// --- images <-> tensors, from the tensor specs ---------------------------------------------------------------------

function imageSpec(spec) {
  if (spec.layout !== "NCHW" || spec.shape.length !== 4) throw new Error(`${spec.name} is not an NCHW image`);
  const [, channels, height, width] = spec.shape;
  const [low, high] = spec.value_range || [0, 1];
  return { channels, height, width, low, high };
}

function sourceSize(source) {
  return [source.naturalWidth || source.videoWidth || source.width, source.naturalHeight || source.videoHeight || source.height];
}

// an <img>, <canvas> or ImageBitmap, centre-cropped to the tensor's aspect and resized: one item's Float32Array
function toTensor(source, spec) {
  const { channels, height, width, low, high } = imageSpec(spec);
  const canvas = el("canvas", { width, height });
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const [w, h] = sourceSize(source);
  const side = Math.min(w / width, h / height);
  context.drawImage(source, (w - width * side) / 2, (h - height * side) / 2, width * side, height * side, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  const out = new Float32Array(channels * height * width);
  const plane = height * width;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) {
      const level = channels === 1 ? (rgba[4 * p] + rgba[4 * p + 1] + rgba[4 * p + 2]) / 3 : rgba[4 * p + c];
      out[c * plane + p] = low + (level / 255) * (high - low);
    }
  }
  return out;
}

// item ``index`` of an NCHW output as a canvas
function toCanvas(data, index, spec) {
  const { channels, height, width, low, high } = imageSpec(spec);
  const plane = height * width;
  const offset = index * channels * plane;
  const image = new ImageData(width, height);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = data[offset + (channels === 1 ? 0 : c) * plane + p];
      image.data[4 * p + c] = Math.round(Math.min(1, Math.max(0, (v - low) / (high - low))) * 255);
    }
    image.data[4 * p + 3] = 255;
  }
  const canvas = el("canvas", { width, height });
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

// tiles in rows of ``columns`` with 2-pixel padding, enlarged by ``scale`` (the layout of the Python tasks' grids)
function drawGrid(target, tiles, columns, scale) {
  const [w, h] = sourceSize(tiles[0]);
  const rows = Math.ceil(tiles.length / columns);
  const cols = Math.min(columns, tiles.length);
  target.width = (2 + cols * (w + 2)) * scale;
  target.height = (2 + rows * (h + 2)) * scale;
  const context = target.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.fillStyle = "#000";
  context.fillRect(0, 0, target.width, target.height);
  tiles.forEach((tile, i) => {
    const x = (2 + (i % columns) * (w + 2)) * scale, y = (2 + Math.floor(i / columns) * (h + 2)) * scale;
    context.drawImage(tile, x, y, w * scale, h * scale);
  });
  target.dataset.done = String(Number(target.dataset.done || 0) + 1);
}

function showOne(target, tile, scale) {
  const [w, h] = sourceSize(tile);
  target.width = w * scale;
  target.height = h * scale;
  const context = target.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(tile, 0, 0, target.width, target.height);
  target.dataset.done = String(Number(target.dataset.done || 0) + 1);
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the image did not decode"));
    img.src = url;
  });
}

async function fileImage(file) {
  try { return await createImageBitmap(file); } catch { throw new Error(`${file.name}: not an image this browser decodes`); }
}

// --- widgets -----------------------------------------------------------------------------------------------------

function widget(model, task, title) {
  const base = `${model.name}-${task.name}`;
  const box = el("div", { class: "widget", id: `task-${base}` }, el("h3", { text: title }), el("p", { class: "card", text: task.summary }));
  const controls = el("div", { class: "controls" });
  const result = el("div", { class: "result" });
  const error = el("div", { class: "error", id: `${base}-error` });
  box.append(controls, result, error);
  return { base, box, controls, result, error };
}

function action(button, error, run) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try { await run(); } catch (failure) { error.textContent = failure.message; } finally { button.disabled = false; }
  });
}

function param(task, name) {
  return task.params.find((p) => p.name === name) || null;
}

function numberInput(id, spec, fallback, cap) {
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const max = Math.min(num(spec && spec.maximum) ?? cap, cap);
  const min = num(spec && spec.minimum) ?? 0;
  const value = Math.min(num(spec && spec.default) ?? fallback, max);
  return el("input", { id, type: "number", value, min, max });
}

function boundedInt(input, what) {
  const value = Number(input.value);
  const low = Number(input.min), high = Number(input.max);
  if (!Number.isInteger(value) || value < low || value > high) throw new Error(`${what} must be a whole number from ${low} to ${high}`);
  return value;
}

const MAX_ITEMS = 64;  // one browser call decodes at most this many images

function sampleWidget(model, task) {
  const w = widget(model, task, `${task.name}: decode draws from the prior`);
  const options = task.web.options;
  const decoder = model.graph(options.graph);
  const latent = decoder.inputs[0];
  const dim = latent.shape[1];
  const seed = el("input", { id: `${w.base}-seed`, type: "number", value: 0, min: 0, max: 4294967295 });
  const count = numberInput(`${w.base}-count`, param(task, options.count || "n"), 16, MAX_ITEMS);
  const columnsParam = typeof options.columns === "string" ? param(task, options.columns) : null;
  const columns = numberInput(`${w.base}-columns`, columnsParam, typeof options.columns === "number" ? options.columns : 8, MAX_ITEMS);
  const button = el("button", { id: `${w.base}-run`, text: "Sample" });
  const out = el("canvas", { id: `${w.base}-out` });
  const prior = task.web.prior;
  w.controls.append(el("label", { text: "seed " }, seed), el("label", { text: "images " }, count),
    el("label", { text: "per row " }, columns), button);
  const seeded = "; normals from the seed by mulberry32 + Box-Muller, so a seed gives other images than in Python";
  w.result.append(out, el("p", { class: "card", text: (prior
    ? `z ~ N(mean, std²) fitted at export time to the codes of ${prior.items} data images`
    : "z ~ N(0, I)") + seeded }));
  action(button, w.error, async () => {
    const n = boundedInt(count, "images"), perRow = boundedInt(columns, "per row");
    const z = normals(boundedInt(seed, "seed"), n * dim);
    if (prior) for (let i = 0; i < z.length; i++) z[i] = prior.mean[i % dim] + prior.std[i % dim] * z[i];
    const [images] = await model.run(options.graph, [{ data: z, dims: [n, dim] }]);
    const tiles = Array.from({ length: n }, (_, i) => toCanvas(images.data, i, decoder.outputs[0]));
    drawGrid(out, tiles, perRow, model.card.grid_scale);
  });
  return w.box;
}

// examples from the data (PNG data URLs made at export time), a file, or a drawing; returns a getter of the chosen one
function imagePicker(w, examples, drawable, label = "input") {
  let chosen = null;
  const row = el("div", { class: "examples" }, el("span", { text: `${label}: ` }));
  const thumbs = (examples || []).map((url, i) => {
    const img = el("img", { id: `${w.base}-${label}-example-${i}`, src: url, alt: `example ${i}`, title: `data example ${i}` });
    img.addEventListener("click", () => choose(img, img));
    row.append(img);
    return img;
  });
  const file = el("input", { id: `${w.base}-${label}-file`, type: "file", accept: "image/png,image/jpeg,image/webp,image/bmp" });
  row.append(el("label", { text: " or a file " }, file));
  function choose(source, marker) {
    chosen = source;
    thumbs.forEach((t) => t.classList.toggle("chosen", t === marker));
  }
  file.addEventListener("change", async () => {
    if (file.files.length) {
      try { choose(await fileImage(file.files[0]), null); } catch (failure) { w.error.textContent = failure.message; }
    }
  });
  let pad = null;
  if (drawable) {
    pad = el("canvas", { id: `${w.base}-draw`, class: "draw", width: 280, height: 280 });
    const clear = el("button", { id: `${w.base}-clear`, text: "Clear" });
    const pen = pad.getContext("2d");
    const wipe = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, 280, 280); };
    wipe();
    let drawing = false;
    const at = (event) => { const r = pad.getBoundingClientRect(); return [event.clientX - r.left, event.clientY - r.top]; };
    pad.addEventListener("pointerdown", (event) => { drawing = true; choose(pad, null); pen.beginPath(); pen.moveTo(...at(event)); });
    pad.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      pen.lineTo(...at(event)); pen.strokeStyle = "#fff"; pen.lineWidth = 22; pen.lineCap = "round"; pen.stroke();
    });
    window.addEventListener("pointerup", () => { drawing = false; });
    clear.addEventListener("click", () => { wipe(); choose(pad, null); });
    row.append(el("div", {}, el("span", { text: "or draw: " }), pad, clear));
  }
  w.controls.append(row);
  if (thumbs.length) choose(thumbs[0], thumbs[0]);
  else if (pad) choose(pad, null);
  return () => {
    if (!chosen) throw new Error(`choose an ${label} first (a file${pad ? " or a drawing" : ""})`);
    return chosen;
  };
}

function figure(w, id, caption) {
  const canvas = el("canvas", { id });
  w.result.append(el("figure", {}, canvas, el("figcaption", { text: caption })));
  return canvas;
}

async function runChain(model, chain, data, dims) {
  let current = { data, dims };
  for (const graph of chain) [current] = await model.run(graph, [current]);
  return current;
}

function clampTo(spec, data) {
  const [low, high] = spec.value_range || [-Infinity, Infinity];
  return data.map((v) => Math.min(high, Math.max(low, v)));
}

function imageToImageWidget(model, task) {
  const w = widget(model, task, `${task.name}: an image through ${task.graphs.join(", ")}`);
  const options = task.web.options;
  const chains = Array.isArray(options.graphs) ? { "": options.graphs } : options.graphs;
  const keys = Object.keys(chains);
  let select = null;
  if (options.choice) {
    const declared = param(task, options.choice);
    const initial = declared && declared.default ? declared.default : keys[0];
    select = el("select", { id: `${w.base}-choice` },
      ...keys.map((k) => el("option", { value: k, text: k, selected: k === initial })));
    w.controls.append(el("label", { text: `${options.choice} ` }, select));
  }
  const examples = {};
  for (const key of keys) Object.assign(examples, { [key]: (task.web.examples || {})[chains[key][0]] || [] });
  const pickers = {};
  const pickerBox = el("div");
  w.controls.append(pickerBox);
  const current = () => (select ? select.value : "");
  const showPicker = () => {
    const key = current();
    for (const [k, p] of Object.entries(pickers)) p.row.hidden = k !== key;
    if (!pickers[key]) {
      const holder = { base: `${w.base}${key ? "-" + key : ""}`, controls: el("div"), error: w.error };
      const get = imagePicker(holder, examples[key], options.draw === true);
      pickers[key] = { row: holder.controls, get };
      pickerBox.append(holder.controls);
    }
  };
  showPicker();
  if (select) select.addEventListener("change", showPicker);
  const button = el("button", { id: `${w.base}-run`, text: options.inverse ? "Run and back" : "Run" });
  w.controls.append(button);
  const scale = model.card.grid_scale;
  const input = figure(w, `${w.base}-input`, "input");
  const output = figure(w, `${w.base}-output`, "output");
  const back = options.inverse ? figure(w, `${w.base}-back`, "and back") : null;
  action(button, w.error, async () => {
    const key = current();
    const chain = chains[key];
    const head = model.graph(chain[0]).inputs[0];
    const data = toTensor(pickers[key].get(), head);
    const dims = [1, ...head.shape.slice(1)];
    showOne(input, toCanvas(data, 0, head), scale);
    const last = model.graph(chain[chain.length - 1]).outputs[0];
    const result = await runChain(model, chain, data, dims);
    showOne(output, toCanvas(result.data, 0, last), scale);
    output.parentNode.querySelector("figcaption").textContent = key ? `→ ${key}` : "output";
    if (back) {
      const reverse = options.inverse[key];
      const backChain = chains[reverse];
      const returned = await runChain(model, backChain, clampTo(last, result.data), result.dims);
      showOne(back, toCanvas(returned.data, 0, model.graph(backChain[backChain.length - 1]).outputs[0]), scale);
      back.parentNode.querySelector("figcaption").textContent = `and back (${reverse})`;
    }
  });
  return w.box;
}

function interpolateWidget(model, task) {
  const w = widget(model, task, `${task.name}: between two images on a slider`);
  const options = task.web.options;
  const encoder = model.graph(options.encoder), decoder = model.graph(options.decoder);
  const examples = (task.web.examples || {})[options.encoder] || [];
  const getA = imagePicker(w, examples, false, "A");
  const getB = imagePicker(w, examples.slice(1).concat(examples.slice(0, 1)), false, "B");
  const steps = numberInput(`${w.base}-steps`, param(task, options.steps || "steps"), 6, MAX_ITEMS);
  const button = el("button", { id: `${w.base}-run`, text: "Encode both" });
  const slider = el("input", { id: `${w.base}-slider`, type: "range", min: 0, max: 1, value: 0, disabled: true });
  w.controls.append(el("label", { text: "steps " }, steps), button, el("label", { text: " A ↔ B " }, slider));
  const view = el("canvas", { id: `${w.base}-view` });
  const strip = el("canvas", { id: `${w.base}-strip` });
  const weight = el("p", { class: "captions", id: `${w.base}-weight` });
  w.result.append(view, weight, strip);
  let tiles = [], captions = [];
  const draw = () => {
    const k = Number(slider.value);
    showOne(view, tiles[k], Math.max(2, 2 * model.card.grid_scale));
    weight.textContent = captions[k];
  };
  slider.addEventListener("input", draw);
  action(button, w.error, async () => {
    const n = boundedInt(steps, "steps");
    if (n < 2) throw new Error("steps must be at least 2");
    const spec = encoder.inputs[0];
    const a = toTensor(getA(), spec), b = toTensor(getB(), spec);
    const pair = new Float32Array(a.length * 2);
    pair.set(a); pair.set(b, a.length);
    const [codes] = await model.run(options.encoder, [{ data: pair, dims: [2, ...spec.shape.slice(1)] }]);
    const dim = codes.data.length / 2;
    const z = new Float32Array(n * dim);
    const weights = Array.from({ length: n }, (_, i) => 1 - i / (n - 1));
    weights.forEach((wt, i) => { for (let j = 0; j < dim; j++) z[i * dim + j] = wt * codes.data[j] + (1 - wt) * codes.data[dim + j]; });
    const [images] = await model.run(options.decoder, [{ data: z, dims: [n, dim] }]);
    tiles = [toCanvas(a, 0, spec), ...weights.map((_, i) => toCanvas(images.data, i, decoder.outputs[0])), toCanvas(b, 0, spec)];
    captions = ["A", ...weights.map((wt) => `w=${wt.toFixed(2)}`), "B"];
    drawGrid(strip, tiles, tiles.length, model.card.grid_scale);
    slider.max = String(tiles.length - 1);
    slider.disabled = false;
    draw();
  });
  return w.box;
}

// --- the arithmetic language: [sign] group (sign group)*, group := literal ("&" literal)*, literal := ["~"] name ---

function parseExpression(text) {
  const terms = [];
  let i = 0;
  const fail = (what) => new Error(`arithmetic: ${what} at position ${i + 1} in "${text}"`);
  const space = () => { while (i < text.length && /\s/.test(text[i])) i++; };
  const name = () => {
    const start = i;
    while (i < text.length && /[A-Za-z0-9_.]/.test(text[i])) i++;
    if (i === start) throw fail("expected an attribute name");
    return text.slice(start, i);
  };
  space();
  if (i >= text.length) throw new Error("arithmetic: the expression is empty");
  let sign = 1;
  if (text[i] === "+" || text[i] === "-") { sign = text[i] === "-" ? -1 : 1; i++; space(); }
  for (;;) {
    const position = i;
    const literals = [];
    for (;;) {
      space();
      let negated = false;
      if (text[i] === "~") { negated = true; i++; space(); }
      const at = i;
      literals.push({ name: name(), negated, position: at });
      space();
      if (text[i] !== "&") break;
      i++;
    }
    terms.push({ sign, literals, position, text: literals.map((l) => (l.negated ? "~" : "") + l.name).join("&") });
    space();
    if (i >= text.length) break;
    if (text[i] !== "+" && text[i] !== "-") throw fail(`expected + or -, found "${text[i]}"`);
    sign = text[i] === "-" ? -1 : 1;
    i++;
    space();
    if (i >= text.length) throw fail("expected a term after the sign");
  }
  if (terms.length > 16) throw new Error(`arithmetic: ${terms.length} terms; at most 16`);
  return terms;
}

// a group's mean encoding: the count-weighted mean of the label cells it matches (precomputed at export time)
function groupMean(groups, term, text) {
  const dim = groups.cells[0].mean.length;
  const sum = new Float64Array(dim);
  let count = 0;
  for (const literal of term.literals) {
    if (!groups.atoms.includes(literal.name)) {
      throw new Error(`arithmetic: unknown attribute "${literal.name}" at position ${literal.position + 1} in "${text}"; `
        + `available: ${groups.atoms.join(", ")}`);
    }
  }
  for (const cell of groups.cells) {
    if (!term.literals.every((l) => (cell.labels[l.name] === 1) !== l.negated)) continue;
    cell.mean.forEach((v, j) => { sum[j] += v * cell.count; });
    count += cell.count;
  }
  if (!count) throw new Error(`arithmetic: group ${term.text} (position ${term.position + 1}) matches none of the labelled images`);
  return { mean: Float32Array.from(sum, (v) => v / count), count };
}

function arithmeticWidget(model, task) {
  const w = widget(model, task, `${task.name}: sums of label groups' mean encodings`);
  const options = task.web.options;
  const groups = task.web.groups;
  const decoder = model.graph(options.decoder);
  const expression = el("input", { id: `${w.base}-expr`, type: "text", value: options.example || groups.atoms[0] });
  const button = el("button", { id: `${w.base}-run`, text: "Decode" });
  w.controls.append(expression, button, el("p", { class: "card", text: `attributes: ${groups.atoms.join(", ")}; each `
    + `group is the mean encoding (${options.encoder}) of up to ${groups.items_per_cell} images per label combination, `
    + "computed at export time (Python's task draws --group-size images at random instead)" }));
  const out = el("canvas", { id: `${w.base}-out` });
  const captions = el("p", { class: "captions", id: `${w.base}-captions` });
  w.result.append(out, captions);
  action(button, w.error, async () => {
    const text = expression.value;
    const terms = parseExpression(text);
    const means = terms.map((term) => groupMean(groups, term, text));
    const dim = means[0].mean.length;
    const z = new Float32Array((terms.length + 1) * dim);
    means.forEach((m, t) => {
      z.set(m.mean, t * dim);
      for (let j = 0; j < dim; j++) z[terms.length * dim + j] += terms[t].sign * m.mean[j];
    });
    const [images] = await model.run(options.decoder, [{ data: z, dims: [terms.length + 1, dim] }]);
    const tiles = Array.from({ length: terms.length + 1 }, (_, i) => toCanvas(images.data, i, decoder.outputs[0]));
    drawGrid(out, tiles, tiles.length, model.card.grid_scale);
    captions.textContent = [...terms.map((t, k) => `${t.sign < 0 ? "-" : k ? "+" : ""}${t.text} (${means[k].count})`), "= result"].join(" | ");
  });
  return w.box;
}

function pythonOnly(model, task) {
  return el("div", { class: "widget python-only", id: `task-${model.name}-${task.name}` },
    el("h3", { text: task.name }), el("p", { text: `${task.summary}. Runs in Python: ${task.command}` }));
}

const KINDS = { sample: sampleWidget, "image-to-image": imageToImageWidget, interpolate: interpolateWidget, arithmetic: arithmeticWidget };

// --- cards -------------------------------------------------------------------------------------------------------

function cardOf(model) {
  const card = model.card;
  const rows = Object.entries(model.manifest.graphs).map(([name, entry]) => {
    const files = model.files(name);
    const precisions = Object.keys(files);
    const chooser = el("select", { id: `precision-${model.name}-${name}`, disabled: precisions.length < 2 },
      ...precisions.map((p) => el("option", { value: p, text: p })));
    chooser.addEventListener("change", () => { model.precision[name] = chooser.value; check(model, name); });
    return el("tr", {},
      el("td", { text: name }),
      el("td", { text: entry.inputs.map((t) => `${t.name}[${t.shape.join(",")}]`).join(", ") }),
      el("td", { text: entry.outputs.map((t) => `${t.name}[${t.shape.join(",")}]`).join(", ") }),
      el("td", {}, chooser),
      el("td", { class: "graph-status", id: `graph-status-${model.name}-${name}`, text: "loading…" }));
  });
  return el("div", { class: "card" },
    el("p", { text: `${card.summary} — ${(card.params / 1e6).toFixed(2)} M parameters at preset ${card.card_preset}; `
      + `license ${card.license}; source: ${card.source || "-"}; from ${card.distribution} ${card.version}; `
      + `exported config: ${Object.entries(model.manifest.config).filter(([, v]) => typeof v !== "object").slice(0, 8).map(([k, v]) => `${k}=${v}`).join(", ")}` }),
    el("table", {}, el("tr", {}, ...["graph", "inputs", "outputs", "precision", "status"].map((h) => el("th", { text: h }))), ...rows),
    ...card.notes.map((note) => el("p", { text: `note: ${note}` })));
}

async function check(model, name) {
  const cell = $(`graph-status-${model.name}-${name}`);
  cell.className = "graph-status";
  cell.textContent = "loading…";
  try {
    await model.session(name);
    cell.textContent = `ready (${model.precision[name] || "fp32"}, ${runtime.ep})`;
    cell.classList.add("ok");
    return true;
  } catch (failure) {
    cell.textContent = failure.message;
    cell.classList.add("error");
    return false;
  }
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  try { return await response.json(); } catch (failure) { throw new Error(`${url}: not JSON (${failure.message})`); }
}

async function addModel(name) {
  const section = el("section", { class: "model", id: `model-${name}` }, el("h2", { text: name }));
  $("models").append(section);
  try {
    const [manifest, card] = await Promise.all([fetchJson(`models/${name}/manifest.json`), fetchJson(`models/${name}.json`)]);
    const model = new Model(name, manifest, card);
    models.set(name, model);
    section.append(cardOf(model));
    for (const task of card.tasks) {
      const make = task.web && KINDS[task.web.kind];
      try { section.append(make ? make(model, task) : pythonOnly(model, task)); } catch (failure) {
        section.append(el("div", { class: "widget error", id: `task-${name}-${task.name}`, text: `${task.name}: ${failure.message}` }));
      }
    }
    const loaded = await Promise.all(Object.keys(manifest.graphs).map((graph) => check(model, graph)));
    return loaded.every(Boolean);
  } catch (failure) {
    section.append(el("p", { class: "error", text: `could not load ${name}: ${failure.message}` }));
    return false;
  }
}

// --- hooks for tests and measurements (window.zoo) ---------------------------------------------------------------

function toBase64(f32) {
  const bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

window.zoo = {
  runtime,
  models,
  // run one graph on given float32 inputs ([[base64, dims], ...]); outputs likewise
  async run(model, graph, inputs, precision = "fp32") {
    const m = models.get(model);
    m.precision[graph] = precision;
    const outputs = await m.run(graph, inputs.map(([data, dims]) => ({ data: fromBase64(data), dims })));
    return outputs.map((o) => [toBase64(o.data), o.dims]);
  },
  // items per second of one graph at ``batch`` on random inputs: at least ``seconds`` and ``minRuns`` runs after warm-ups
  async bench(model, graph, batch, seconds, precision = "fp32", warmups = 2, minRuns = 3) {
    const m = models.get(model);
    m.precision[graph] = precision;
    const session = await m.session(graph);
    const feeds = {};
    m.graph(graph).inputs.forEach((spec, k) => {
      const dims = spec.shape.map((d) => (d === "N" ? batch : d));
      const data = normals(k + 1, dims.reduce((a, b) => a * b, 1));
      feeds[spec.name] = new ort.Tensor("float32", data, dims);
    });
    for (let i = 0; i < warmups; i++) await session.run(feeds);
    let runs = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000 || runs < minRuns) { await session.run(feeds); runs++; }
    const elapsed = (performance.now() - start) / 1000;
    return { items_per_s: (runs * batch) / elapsed, runs, seconds: elapsed, threads: runtime.threads, ep: runtime.ep };
  },
  ready: false,
};

async function main() {
  let site;
  try {
    site = await fetchJson("site.json");
    await loadRuntime(site);
  } catch (failure) {
    $("status").textContent = `could not start: ${failure.message}`;
    window.zoo.ready = "failed";
    return;
  }
  const results = [];
  for (const name of site.models) results.push(await addModel(name));  // in order, so the page does not jump
  const broken = results.filter((ok) => !ok).length;
  $("status").textContent = `${site.models.length} model(s) ready in this browser`
    + (broken ? `; ${broken} with a graph that did not load (see its card)` : "");
  window.zoo.ready = true;
}

main();
