// The attention explorer (src/explorer.py writes the data below this script's page): plain script, no
// library, nothing loaded from the network. Weights arrive as base64 float32 arrays [layers, heads, rows,
// cols] and are shown as they are: a cell's `data-weight` is the model's float32 value.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (id) => document.getElementById(id);
  const controls = {
    sentence: $("sentence"), kind: $("kind"), layer: $("layer"), head: $("head"), gold: $("gold"),
  };
  const state = { sentence: 0, hypothesis: 0, kind: null, layer: null, head: null };
  const decoded = new Map();

  // ColorBrewer "Blues": weight 0 is white, 1 the darkest blue
  const STOPS = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];

  function colour(weight) {
    const w = Math.min(Math.max(weight, 0), 1) * (STOPS.length - 1);
    const i = Math.min(Math.floor(w), STOPS.length - 2);
    const t = w - i;
    const rgb = STOPS[i].map((c, k) => Math.round(c + t * (STOPS[i + 1][k] - c)));
    return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
  }

  function floats(base64) {
    if (!decoded.has(base64)) {
      const bytes = atob(base64);
      const buffer = new Uint8Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) buffer[i] = bytes.charCodeAt(i);
      decoded.set(base64, new Float32Array(buffer.buffer));
    }
    return decoded.get(base64);
  }

  function option(select, value, text) {
    const element = document.createElement("option");
    element.value = String(value);
    element.textContent = text;
    select.appendChild(element);
  }

  function sentence() { return data.sentences[state.sentence]; }
  function hypothesis() { return sentence().hypotheses[state.hypothesis]; }

  // the rows, columns and weights of the chosen attention of the chosen hypothesis
  function view() {
    const s = sentence();
    const h = hypothesis();
    if (state.kind === "encoder") {
      return { rows: s.src_tokens, cols: s.src_tokens, weights: s.encoder, rowName: "source", colName: "source" };
    }
    if (state.kind === "decoder") {
      return { rows: h.tokens, cols: h.in_tokens, weights: h.decoder, rowName: "output", colName: "input" };
    }
    return { rows: h.tokens, cols: s.src_tokens, weights: h.cross, rowName: "output", colName: "source" };
  }

  // [rows * cols] of one layer and head, or the mean over layers and/or heads
  function matrix(v) {
    const shape = data.kinds[state.kind];
    const all = floats(v.weights);
    const size = v.rows.length * v.cols.length;
    const layers = state.layer === "mean" ? [...Array(shape.layers).keys()] : [Number(state.layer)];
    const heads = state.head === "mean" ? [...Array(shape.heads).keys()] : [Number(state.head)];
    if (layers.length === 1 && heads.length === 1) {
      const start = (layers[0] * shape.heads + heads[0]) * size;
      return all.subarray(start, start + size);
    }
    const mean = new Float64Array(size);
    for (const layer of layers) {
      for (const head of heads) {
        const start = (layer * shape.heads + head) * size;
        for (let i = 0; i < size; i++) mean[i] += all[start + i];
      }
    }
    const count = layers.length * heads.length;
    for (let i = 0; i < size; i++) mean[i] /= count;
    return mean;
  }

  function goldCells() {
    const gold = hypothesis().gold;
    const cells = new Map();
    if (!gold || state.kind !== "cross" || !controls.gold.checked) return cells;
    for (const [row, col] of gold.possible) cells.set(`${row},${col}`, "gold-possible");
    for (const [row, col] of gold.sure) cells.set(`${row},${col}`, "gold-sure");
    return cells;
  }

  function cellSize(cols) {
    const scroll = $("heatmap-scroll");
    const available = scroll.clientWidth - 170;  // the row labels
    // each cell also takes a 1 px border
    return Math.max(11, Math.min(28, Math.floor(available / Math.max(cols, 1)) - 1));
  }

  function drawHeatmap() {
    const v = view();
    const weights = matrix(v);
    const gold = goldCells();
    const table = $("heatmap");
    const cell = cellSize(v.cols.length);
    table.style.setProperty("--cell", `${cell}px`);
    table.style.setProperty("--label-size", `${cell < 16 ? 11 : cell < 20 ? 12 : 13}px`);
    table.replaceChildren();

    const head = table.createTHead().insertRow();
    const corner = document.createElement("th");
    corner.className = "corner";
    corner.textContent = `${v.rowName} \u2193  ${v.colName} \u2192`;
    head.appendChild(corner);
    v.cols.forEach((token, col) => {
      const th = document.createElement("th");
      th.className = "col-label";
      th.dataset.col = String(col);
      const span = document.createElement("span");
      span.textContent = token;
      span.title = `${token} (${v.colName} ${col})`;
      th.appendChild(span);
      head.appendChild(th);
    });

    const body = table.createTBody();
    v.rows.forEach((token, row) => {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.className = "row-label";
      th.dataset.row = String(row);
      th.textContent = token;
      th.title = `${token} (${v.rowName} ${row})`;
      tr.appendChild(th);
      v.cols.forEach((_, col) => {
        const td = tr.insertCell();
        const weight = weights[row * v.cols.length + col];
        td.dataset.row = String(row);
        td.dataset.col = String(col);
        td.dataset.weight = String(weight);
        td.style.backgroundColor = colour(weight);
        if (state.kind === "decoder" && col > row) td.classList.add("future");
        const mark = gold.get(`${row},${col}`);
        if (mark) td.classList.add(mark);
      });
    });
    if (state.kind === "cross" && hypothesis().coverage) drawCoverage(body, v, v.rows.length - 1);
  }

  // coverage after `step`: the sum of the attention of every step up to it (a coverage model's own state)
  function drawCoverage(body, v, step) {
    let tr = body.querySelector("tr.coverage");
    if (!tr) {
      tr = body.insertRow();
      tr.className = "coverage";
      const th = document.createElement("th");
      th.className = "row-label";
      tr.appendChild(th);
      v.cols.forEach((_, col) => { tr.insertCell().dataset.col = String(col); });
    }
    const coverage = floats(hypothesis().coverage);
    tr.dataset.step = String(step);
    tr.cells[0].textContent = `coverage after ${v.rows[step]}`;
    tr.cells[0].title = `coverage after output ${step}: how much attention each source token got so far`;
    v.cols.forEach((_, col) => {
      const td = tr.cells[col + 1];
      const value = coverage[step * v.cols.length + col];
      td.dataset.weight = String(value);
      td.style.backgroundColor = colour(value);
    });
  }

  function showCell(td) {
    const v = view();
    const info = $("info");
    const col = Number(td.dataset.col);
    const weight = td.dataset.weight;
    const coverageRow = td.parentElement.classList.contains("coverage");
    document.querySelectorAll("#heatmap .hot, #heatmap .hover").forEach((e) => e.classList.remove("hot", "hover"));
    td.classList.add("hover");
    const colLabel = document.querySelector(`#heatmap th.col-label[data-col="${col}"]`);
    if (colLabel) colLabel.classList.add("hot");
    info.dataset.col = String(col);
    info.dataset.weight = weight;
    const value = Number(weight).toFixed(4);
    if (coverageRow) {
      const step = Number(td.parentElement.dataset.step);
      info.dataset.row = "coverage";
      info.innerHTML = "";
      info.append("coverage of ", bold(v.cols[col]), ` (${v.colName} ${col}) after `, bold(v.rows[step]),
        ` (${v.rowName} ${step}): `, bold(value));
      return;
    }
    const row = Number(td.dataset.row);
    const rowLabel = document.querySelector(`#heatmap th.row-label[data-row="${row}"]`);
    if (rowLabel) rowLabel.classList.add("hot");
    info.dataset.row = String(row);
    info.innerHTML = "";
    info.append(bold(v.rows[row]), ` (${v.rowName} ${row}) \u2192 `, bold(v.cols[col]), ` (${v.colName} ${col}): `,
      bold(value));
    const mark = td.classList.contains("gold-sure") ? " \u00b7 gold: sure" :
      td.classList.contains("gold-possible") ? " \u00b7 gold: possible" : "";
    if (mark) info.append(mark);
    const coverage = document.querySelector("#heatmap tr.coverage");
    if (coverage) drawCoverage(coverage.parentElement, v, row);
  }

  function bold(text) {
    const b = document.createElement("b");
    b.textContent = text;
    return b;
  }

  function number(value) { return value === null || value === undefined ? "\u2013" : value.toFixed(3); }

  function drawHypotheses() {
    const body = $("hypotheses").tBodies[0];
    body.replaceChildren();
    sentence().hypotheses.forEach((h, index) => {
      const tr = body.insertRow();
      tr.tabIndex = 0;
      tr.dataset.index = String(index);
      tr.setAttribute("role", "button");
      if (index === state.hypothesis) tr.classList.add("selected");
      const cells = [h.label, h.text || "(empty)", number(h.score), number(h.log_prob)];
      cells.forEach((text, k) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (k !== 1) td.className = "number";
      });
      if (h.gold) tr.title = "the reference, read by the model, with the gold alignment";
    });
  }

  function selectHypothesis(index) {
    state.hypothesis = index;
    document.querySelectorAll("#hypotheses tbody tr").forEach((tr) => {
      tr.classList.toggle("selected", Number(tr.dataset.index) === index);
    });
    $("gold-control").hidden = !hypothesis().gold;
    drawHeatmap();
    resetInfo();
  }

  function resetInfo() {
    const info = $("info");
    info.textContent = "Hover a cell to read its weight.";
    delete info.dataset.weight;
    delete info.dataset.row;
    delete info.dataset.col;
  }

  function fillLayerAndHead() {
    const shape = data.kinds[state.kind];
    const previous = { layer: controls.layer.value, head: controls.head.value };
    controls.layer.replaceChildren();
    for (let layer = 0; layer < shape.layers; layer++) option(controls.layer, layer, String(layer));
    if (shape.layers > 1) option(controls.layer, "mean", "mean");
    controls.head.replaceChildren();
    if (shape.heads > 1) option(controls.head, "mean", "mean");
    for (let head = 0; head < shape.heads; head++) option(controls.head, head, String(head));
    const has = (select, value) => [...select.options].some((o) => o.value === value);
    // by default the last layer (the weights the model returns) and the mean over heads
    controls.layer.value = has(controls.layer, previous.layer) ? previous.layer : String(shape.layers - 1);
    controls.head.value = has(controls.head, previous.head) ? previous.head : controls.head.options[0].value;
    state.layer = controls.layer.value;
    state.head = controls.head.value;
  }

  function selectSentence(index) {
    state.sentence = index;
    state.hypothesis = 0;
    controls.sentence.value = String(index);
    const s = sentence();
    $("source").textContent = s.source;
    $("previous").disabled = index === 0;
    $("next").disabled = index === data.sentences.length - 1;
    const kinds = Object.keys(data.kinds).filter((kind) => kind !== "encoder" || s.encoder);
    if (!kinds.includes(state.kind)) state.kind = kinds[0];
    drawHypotheses();
    selectHypothesis(0);
  }

  function legend() {
    const gradient = [0, 0.25, 0.5, 0.75, 1].map((w) => colour(w)).join(", ");
    $("gradient").style.background = `linear-gradient(to right, ${gradient})`;
    const notes = $("legend-notes");
    notes.textContent = "";
    const hasGold = data.sentences.some((s) => s.hypotheses.some((h) => h.gold));
    if (hasGold) {
      for (const [name, variable] of [["sure", "--sure"], ["possible", "--possible"]]) {
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.border = `2px solid var(${variable})`;
        notes.append(swatch, `gold link (${name})  `);
      }
      notes.append(document.createElement("br"));
    }
    if (data.coverage) notes.append("Last row: the coverage vector (cumulative attention).");
  }

  function start() {
    $("title").textContent = data.title;
    $("model").textContent = data.model.description;
    if (data.sentences.length === 0) {
      $("info").textContent = "No sentence had any source token to show.";
      return;
    }
    data.sentences.forEach((s, index) => {
      const text = s.source.length > 60 ? `${s.source.slice(0, 57)}...` : s.source;
      option(controls.sentence, index, `${index + 1}. ${text}`);
    });
    for (const [kind, shape] of Object.entries(data.kinds)) option(controls.kind, kind, shape.label);
    state.kind = Object.keys(data.kinds)[0];
    controls.kind.value = state.kind;
    fillLayerAndHead();
    legend();

    controls.sentence.addEventListener("change", () => selectSentence(Number(controls.sentence.value)));
    $("previous").addEventListener("click", () => selectSentence(Math.max(state.sentence - 1, 0)));
    $("next").addEventListener("click", () => selectSentence(Math.min(state.sentence + 1, data.sentences.length - 1)));
    controls.kind.addEventListener("change", () => {
      state.kind = controls.kind.value;
      fillLayerAndHead();
      drawHeatmap();
      resetInfo();
    });
    controls.layer.addEventListener("change", () => { state.layer = controls.layer.value; drawHeatmap(); resetInfo(); });
    controls.head.addEventListener("change", () => { state.head = controls.head.value; drawHeatmap(); resetInfo(); });
    controls.gold.addEventListener("change", drawHeatmap);
    const rows = $("hypotheses").tBodies[0];
    rows.addEventListener("click", (event) => {
      const tr = event.target.closest("tr");
      if (tr) selectHypothesis(Number(tr.dataset.index));
    });
    rows.addEventListener("keydown", (event) => {
      const tr = event.target.closest("tr");
      if (tr && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        selectHypothesis(Number(tr.dataset.index));
      }
    });
    $("heatmap").addEventListener("mouseover", (event) => {
      const td = event.target.closest("td");
      if (td && td.dataset.weight !== undefined) showCell(td);
    });
    window.addEventListener("resize", drawHeatmap);
    selectSentence(0);
  }

  start();
})();
