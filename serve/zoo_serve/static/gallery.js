// The zoo gallery: a card per served model and a form per task, all through the server's own HTTP API.
// Special widgets for the first-party models (VAE samples, interpolation slider, arithmetic, hair round
// trip, a digit drawn for the autoencoder); every other task gets a form built from its declared fields.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function authHeaders() {
  const key = $("api-key").value;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
}

// POST a task form; returns a Blob (PNG) or, with json=true, {main, images: {name: dataURL}}.
async function runTask(path, fields, json = false) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (Array.isArray(value)) value.forEach((v) => form.append(name, v));
    else if (value !== undefined && value !== null && value !== "") form.append(name, value);
  }
  const response = await fetch(path + (json ? "?format=json" : ""), { method: "POST", body: form, headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  return json ? response.json() : response.blob();
}

async function infer(model, name, shape, data) {
  const body = { inputs: [{ name, shape, datatype: "FP32", data: Array.from(data) }] };
  const response = await fetch(`/v2/models/${model}/infer`, {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json", ...authHeaders() },
  });
  if (!response.ok) throw new Error(await errorText(response));
  return (await response.json()).outputs[0];
}

function showBlob(img, blob) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the image did not decode"));
    img.src = URL.createObjectURL(blob);
  });
}

function widget(title, summary) {
  const box = el("div", { class: "widget" }, el("h3", { text: title }), el("p", { class: "card", text: summary }));
  const error = el("div", { class: "error" });
  const result = el("div", { class: "result" });
  box.append(result, error);
  return { box, result, error };
}

// Run an action from a button, showing its error (the server's positioned message) under the widget.
function action(button, error, run) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try { await run(); } catch (failure) { error.textContent = failure.message; } finally { button.disabled = false; }
  });
}

function numberInput(id, value, min, max) {
  return el("input", { id, type: "number", value, min, max });
}

function cardOf(entry) {
  const card = entry.card;
  const rows = entry.graphs.map((g) => el("tr", {},
    el("td", { text: g.name }),
    el("td", { text: g.inputs.map((t) => `${t.name}[${t.shape.join(",")}] ${t.datatype}`).join(", ") }),
    el("td", { text: g.outputs.map((t) => `${t.name}[${t.shape.join(",")}] ${t.datatype}`).join(", ") })));
  return el("div", { class: "card" },
    el("p", { text: `${card.summary} — ${(card.params / 1e6).toFixed(2)} M parameters at preset ${card.card_preset}; `
      + `license ${card.license}; source: ${card.source || "-"}; from ${card.distribution} ${card.version}` }),
    el("p", { text: `served: ${entry.source}` }),
    el("table", {}, el("tr", {}, el("th", { text: "v2 model" }), el("th", { text: "inputs" }), el("th", { text: "outputs" })),
      ...rows));
}

// --- special widgets ---------------------------------------------------------------------------------

function vaeSample(entry, task) {
  const w = widget("Sample faces", task.summary);
  const seed = numberInput("vae-seed", 0, 0, 4294967295);
  const count = numberInput("vae-count", 12, 1, 64);
  const button = el("button", { id: "vae-sample-run", text: "Sample" });
  const img = el("img", { id: "vae-sample-img", alt: "sampled faces" });
  w.box.insertBefore(el("div", {}, el("label", { text: "seed " }, seed), el("label", { text: "faces " }, count), button),
    w.result);
  w.result.append(img);
  action(button, w.error, async () => showBlob(img, await runTask(task.path, { seed: seed.value, n: count.value, columns: 6 })));
  return w.box;
}

function vaeInterpolate(entry, task) {
  const w = widget("Interpolate between two faces", task.summary);
  const a = numberInput("interp-a", 0, 0), b = numberInput("interp-b", 1, 0);
  const steps = 8;
  const button = el("button", { id: "interp-run", text: "Encode both" });
  const slider = el("input", { id: "interp-slider", type: "range", min: 0, max: steps + 1, value: 0, disabled: "" });
  const strip = el("img", { id: "interp-strip", alt: "interpolation strip" });
  const canvas = el("canvas", { id: "interp-canvas" });
  w.box.insertBefore(el("div", {}, el("label", { text: "face A (index) " }, a), el("label", { text: "face B " }, b), button,
    el("label", { text: " A ↔ B " }, slider)), w.result);
  w.result.append(canvas, el("br"), strip);
  const size = Number(entry.config.image_size);
  const scale = Math.max(1, Math.floor(128 / size));
  const draw = () => {  // one tile of the strip: the task saves a grid with 2-pixel padding, enlarged by scale
    const k = Number(slider.value);
    const side = size * scale, step = (size + 2) * scale;
    canvas.width = side; canvas.height = side;
    canvas.getContext("2d").drawImage(strip, 2 * scale + k * step, 2 * scale, side, side, 0, 0, side, side);
  };
  slider.addEventListener("input", draw);
  action(button, w.error, async () => {
    await showBlob(strip, await runTask(task.path, { a: a.value, b: b.value, steps }));
    slider.removeAttribute("disabled");
    draw();
  });
  return w.box;
}

function vaeArithmetic(entry, task) {
  const w = widget("Arithmetic on encodings", task.summary);
  const expression = el("input", { id: "arith-expr", type: "text", value: "glasses&male - glasses&~male + ~glasses&~male" });
  const button = el("button", { id: "arith-run", text: "Decode" });
  const img = el("img", { id: "arith-img", alt: "each term's decoded mean, then the result" });
  w.error.id = "arith-error";
  w.box.insertBefore(el("div", {}, expression, button), w.result);
  w.result.append(img);
  action(button, w.error, async () => showBlob(img, await runTask(task.path, { expression: expression.value })));
  return w.box;
}

function dataUrlToBlob(url) {
  const [head, data] = url.split(",");
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: head.split(":")[1].split(";")[0] });
}

function hairTranslate(entry, task) {
  const w = widget("Hair colour: your photo, translated and back", task.summary);
  const file = el("input", { id: "hair-file", type: "file", accept: "image/png,image/jpeg,image/webp,image/bmp" });
  const direction = el("select", { id: "hair-direction" },
    el("option", { value: "black2blond", text: "black → blond" }), el("option", { value: "blond2black", text: "blond → black" }));
  const button = el("button", { id: "hair-run", text: "Translate and back" });
  const size = Number(entry.config.image_size);
  const figure = (id, caption) => {
    const img = el("img", { id, alt: caption, width: Math.max(128, size), height: Math.max(128, size) });
    w.result.append(el("figure", {}, img, el("figcaption", { text: caption })));
    return img;
  };
  const original = figure("hair-original", "your photo"), there = figure("hair-translated", "translated"),
    back = figure("hair-roundtrip", "and back");
  w.box.insertBefore(el("div", {}, file, direction, button), w.result);
  const single = (result) => Object.keys(result.images).find((name) => !name.includes("grid"));
  action(button, w.error, async () => {
    if (!file.files.length) throw new Error("choose a photo first");
    await showBlob(original, file.files[0]);
    const reverse = direction.value === "black2blond" ? "blond2black" : "black2blond";
    const first = await runTask(task.path, { images: [file.files[0]], direction: direction.value }, true);
    const translated = dataUrlToBlob(first.images[single(first)]);
    await showBlob(there, translated);
    const second = await runTask(task.path, { images: [new File([translated], "translated.png")], direction: reverse }, true);
    await showBlob(back, dataUrlToBlob(second.images[single(second)]));
  });
  return w.box;
}

function digitCanvas(entry, graph) {
  const w = widget("Draw a digit for the autoencoder", `graph ${graph.name}: your drawing, 28×28, and its reconstruction`);
  const pad = el("canvas", { id: "digit-draw", class: "draw", width: 280, height: 280 });
  const out = el("canvas", { id: "digit-out", width: 280, height: 280 });
  const button = el("button", { id: "digit-run", text: "Reconstruct" });
  const clear = el("button", { id: "digit-clear", text: "Clear" });
  w.box.insertBefore(el("div", {}, button, clear), w.result);
  w.result.append(pad, out);
  const pen = pad.getContext("2d");
  const wipe = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, 280, 280); };
  wipe();
  let drawing = false;
  const at = (event) => { const r = pad.getBoundingClientRect(); return [event.clientX - r.left, event.clientY - r.top]; };
  pad.addEventListener("pointerdown", (event) => { drawing = true; pen.beginPath(); pen.moveTo(...at(event)); });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    pen.lineTo(...at(event)); pen.strokeStyle = "#fff"; pen.lineWidth = 22; pen.lineCap = "round"; pen.stroke();
  });
  window.addEventListener("pointerup", () => { drawing = false; });
  clear.addEventListener("click", wipe);
  action(button, w.error, async () => {
    const small = el("canvas", { width: 28, height: 28 });
    const ctx = small.getContext("2d");
    ctx.drawImage(pad, 0, 0, 28, 28);
    const pixels = ctx.getImageData(0, 0, 28, 28).data;
    const values = new Float32Array(28 * 28);
    for (let i = 0; i < values.length; i++) values[i] = pixels[4 * i] / 255;
    const input = graph.inputs[0];
    const output = await infer(graph.name, input.name, [1, 1, 28, 28], values);
    const image = new ImageData(28, 28);
    output.data.forEach((v, i) => {
      const level = Math.round(Math.min(1, Math.max(0, v)) * 255);
      image.data.set([level, level, level, 255], 4 * i);
    });
    small.getContext("2d").putImageData(image, 0, 0);
    const view = out.getContext("2d");
    view.imageSmoothingEnabled = false;
    view.drawImage(small, 0, 0, 280, 280);
    out.dataset.done = "1";
  });
  return w.box;
}

// --- a form for any other task, from its declared fields ----------------------------------------------

function fieldInput(id, field) {
  if (field.kind === "file" || field.kind === "files") {
    return el("input", { id, type: "file", multiple: field.kind === "files" ? "" : null });
  }
  if (field.kind === "choice") {
    return el("select", { id }, ...field.choices.map((c) => el("option", { value: c, text: c, selected: c === field.default ? "" : null })));
  }
  if (field.kind === "flag") return el("input", { id, type: "checkbox", checked: field.default ? "" : null });
  if (field.kind === "integer" || field.kind === "number") {
    return el("input", { id, type: "number", value: field.default ?? "", min: field.minimum, max: field.maximum,
      step: field.kind === "number" ? "any" : 1 });
  }
  return el("input", { id, type: "text", value: field.default ?? "" });
}

function genericTask(entry, task) {
  const base = `task-${entry.card.name}-${task.name}`;
  const w = widget(`${entry.card.name} ${task.name}`, task.summary);
  const inputs = task.fields.map((field) => [field, fieldInput(`${base}-${field.name}`, field)]);
  const button = el("button", { id: `${base}-run`, text: "Run" });
  const img = el("img", { id: `${base}-img`, alt: `${task.name} result` });
  w.box.id = base;
  w.box.insertBefore(el("div", {}, ...inputs.map(([field, input]) => el("label", { text: `${field.name} ` }, input)), button),
    w.result);
  w.result.append(img);
  action(button, w.error, async () => {
    const values = {};
    for (const [field, input] of inputs) {
      if (input.type === "file") values[field.name] = Array.from(input.files);
      else if (input.type === "checkbox") values[field.name] = input.checked ? "true" : "";
      else values[field.name] = input.value;
    }
    await showBlob(img, await runTask(task.path, values));
  });
  return w.box;
}

const SPECIAL = {
  "vae_faces/sample": vaeSample,
  "vae_faces/interpolate": vaeInterpolate,
  "vae_faces/arithmetic": vaeArithmetic,
  "cyclegan_hair/translate": hairTranslate,
};

function modelSection(entry) {
  const section = el("section", { class: "model", id: `model-${entry.card.name}` }, el("h2", { text: entry.card.name }),
    cardOf(entry));
  const autoencoder = entry.graphs.find((g) => g.name === `${entry.card.name}.autoencoder`);
  if (entry.card.name === "ae_mnist" && autoencoder) section.append(digitCanvas(entry, autoencoder));
  for (const task of entry.tasks) {
    const special = SPECIAL[`${entry.card.name}/${task.name}`];
    section.append((special || genericTask)(entry, task));
  }
  return section;
}

async function main() {
  try {
    const response = await fetch("/api/models");
    if (!response.ok) throw new Error(await errorText(response));
    const served = await response.json();
    $("api-key-row").hidden = !served.api_key;
    for (const entry of served.models) $("models").append(modelSection(entry));
    $("status").textContent = `${served.models.length} model(s) served`;
  } catch (failure) {
    $("status").textContent = `could not load the models: ${failure.message}`;
  }
}

main();
