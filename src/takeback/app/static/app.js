/* TakeBack local page. Talks only to the TakeBack server that served it (same origin).
   No framework, no build step. Text from files and the server is always inserted with
   textContent, never as HTML. */
"use strict";

(function () {
  const token = document.querySelector('meta[name="takeback-token"]').content;
  const maxBytes = Number(document.body.dataset.maxFileBytes);
  const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff",
    ".gif", ".bmp", ".heic", ".heif", ".avif"];
  const $ = (id) => document.getElementById(id);
  const number = (n) => Number(n).toLocaleString("en-US");

  // ---------------------------------------------------------------- helpers
  async function api(method, path, body) {
    const options = { method, headers: { "X-TakeBack-Token": token } };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (exc) {
      throw { code: "connection", field: null,
        message: "TakeBack is not answering. Is it still running on this computer?" };
    }
    if (!response.ok) {
      let error = { code: "error", field: null, message: `TakeBack answered ${response.status}` };
      if ((response.headers.get("content-type") || "").includes("json")) {
        const doc = await response.json();
        if (doc && doc.error) error = doc.error;
      }
      throw error;
    }
    return response;
  }
  const apiJson = async (method, path, body) => (await api(method, path, body)).json();

  function say(id, text) { $(id).textContent = text; }

  function showError(id, error, input) {
    const box = $(id);
    box.textContent = error.code && error.code !== "error" && error.code !== "connection"
      ? `${error.message} (${error.code})` : error.message;
    if (input) input.setAttribute("aria-invalid", "true");
  }

  function clearError(id, input) {
    $(id).textContent = "";
    if (input) input.removeAttribute("aria-invalid");
  }

  function sizeError(file) {
    if (file.size <= maxBytes) return null;
    return { code: "image_too_large", field: null,
      message: `${file.name} is ${number(file.size)} bytes; the limit is ${number(maxBytes)} ` +
        "(raise TAKEBACK_MAX_FILE_BYTES if the file is genuine)" };
  }

  function isImageName(name) {
    const dot = name.lastIndexOf(".");
    return dot >= 0 && IMAGE_EXTENSIONS.includes(name.slice(dot).toLowerCase());
  }

  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  function fileName(response, fallback) {
    const match = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    return match ? match[1] : fallback;
  }

  function setProgress(id, done, total) {
    const bar = $(id);
    bar.hidden = total === 0;
    bar.max = Math.max(total, 1);
    bar.value = done;
  }

  // A file dropped anywhere else would make the browser open it in place of this page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    if (!(e.target instanceof HTMLInputElement && e.target.type === "file")) e.preventDefault();
  });

  // ---------------------------------------------------------------- step 1: register
  const photos = [];
  let nextKey = 1;
  let fingerprinting = false;
  let registering = false;

  function statusCell(photo, text, kind) {
    const cell = photo.cells.status;
    cell.textContent = "";
    cell.className = kind === "ok" ? "ok" : "";
    const line = document.createElement(kind === "error" ? "p" : "span");
    if (kind === "error") line.className = "error";
    line.textContent = text;
    cell.appendChild(line);
    return cell;
  }

  function addRow(file) {
    const key = nextKey++;
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.className = "name";
    name.textContent = file.webkitRelativePath || file.name;
    const pdq = document.createElement("td");
    pdq.className = "pdq";
    const quality = document.createElement("td");
    const only = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `pdq-only-${key}`;
    const label = document.createElement("label");
    label.htmlFor = box.id;
    label.textContent = "PDQ only";
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` for ${file.name}`;
    label.appendChild(hidden);
    only.append(box, " ", label);
    const status = document.createElement("td");
    status.id = `photo-status-${key}`;
    row.append(name, pdq, quality, only, status);
    $("photos-body").appendChild(row);
    const photo = { key, file, row, pdqOnly: box, fp: null, error: null, done: false,
      cells: { pdq, quality, status } };
    statusCell(photo, "waiting");
    photos.push(photo);
    return photo;
  }

  function addFiles(files, fromFolder) {
    clearError("photos-error");
    let added = 0;
    let skipped = 0;
    for (const file of files) {
      if (fromFolder && !isImageName(file.name)) { skipped++; continue; }
      addRow(file);
      added++;
    }
    if (!added) {
      showError("photos-error", { message: fromFolder
        ? "no photos in that folder (JPEG, PNG, WebP, TIFF, GIF, BMP or HEIC files)"
        : "no file was chosen", code: "file_unreadable" });
      return;
    }
    $("photos-table").hidden = false;
    if (skipped) say("fingerprint-status", `${skipped} files that are not photos were left out.`);
    fingerprintAll();
  }

  async function fingerprintAll() {
    if (fingerprinting) return;
    fingerprinting = true;
    updateRegisterButton();
    try {
      for (;;) {
        const todo = photos.filter((p) => !p.fp && !p.error);
        if (!todo.length) break;
        const photo = todo[0];
        const total = photos.length;
        const done = photos.filter((p) => p.fp || p.error).length;
        setProgress("fingerprint-progress", done, total);
        say("fingerprint-status", `Computing fingerprints: ${done + 1} of ${total}…`);
        statusCell(photo, "computing fingerprints…");
        const tooBig = sizeError(photo.file);
        if (tooBig) {
          photo.error = tooBig;
          statusCell(photo, `${tooBig.message} (${tooBig.code})`, "error");
          continue;
        }
        const form = new FormData();
        form.append("photo", photo.file, photo.file.name);
        try {
          const fp = await apiJson("POST", "/api/fingerprint", form);
          photo.fp = fp;
          photo.cells.pdq.textContent = fp.pdq.slice(0, 16) + "…";
          photo.cells.pdq.title = fp.pdq;
          photo.cells.quality.textContent = fp.low_quality
            ? `${fp.quality} (low: will match only exact copies)` : String(fp.quality);
          statusCell(photo, fp.registered_as
            ? `already registered as #${fp.registered_as}` : "fingerprinted", "ok");
        } catch (error) {
          photo.error = error;
          statusCell(photo, `${error.message} (${error.code})`, "error");
        }
      }
      const ok = photos.filter((p) => p.fp).length;
      const failed = photos.filter((p) => p.error).length;
      setProgress("fingerprint-progress", photos.length, photos.length);
      say("fingerprint-status", `Fingerprints computed for ${ok} of ${photos.length} photos` +
        (failed ? `; ${failed} could not be read (see the table).` : "."));
    } finally {
      fingerprinting = false;
      updateRegisterButton();
    }
  }

  function pending() { return photos.filter((p) => p.fp && !p.done); }

  function updateRegisterButton() {
    const count = pending().length;
    const button = $("register-button");
    button.disabled = fingerprinting || registering || count === 0;
    button.textContent = count > 1 ? `Register ${count} photos` : "Register the photo";
    if (count === 0) button.textContent = "Register the photos";
  }

  async function register() {
    const todo = pending();
    if (!todo.length) return;
    const remember = $("opt-remember").checked;
    const folderInput = $("remember-folder");
    clearError("remember-error", folderInput);
    registering = true;
    updateRegisterButton();
    let missing = new Set();
    try {
      if (remember) {
        const findable = todo.filter((p) => !p.pdqOnly.checked)
          .map((p) => ({ sha256: p.fp.sha256, size: p.fp.size }));
        if (findable.length) {
          if (!folderInput.value.trim()) {
            showError("remember-error", { code: "input_error",
              message: "type the folder where these photos are, e.g. Pictures/me" }, folderInput);
            folderInput.focus();
            return;
          }
          say("register-status", "Looking for the photos in that folder…");
          try {
            const found = await apiJson("POST", "/api/originals",
              { folder: folderInput.value, photos: findable });
            missing = new Set(found.missing);
          } catch (error) {
            showError("remember-error", error, folderInput);
            say("register-status", "Nothing was registered: check the folder.");
            folderInput.focus();
            return;
          }
        }
      }
      let done = 0;
      let failed = 0;
      for (const photo of todo) {
        setProgress("register-progress", done, todo.length);
        say("register-status", `Registering ${done + 1} of ${todo.length}…`);
        const form = new FormData();
        form.append("photo", photo.file, photo.file.name);
        form.append("pdq_only", photo.pdqOnly.checked ? "yes" : "no");
        form.append("sign", $("opt-sign").checked ? "yes" : "no");
        form.append("log", $("opt-log").checked ? "yes" : "no");
        form.append("signer_name", $("signer-name").value);
        try {
          const result = await apiJson("POST", "/api/register", form);
          photo.done = true;
          photo.pdqOnly.disabled = true;
          const parts = [result.duplicate_of !== null
            ? `already registered as #${result.id}` : `registered as #${result.id}`];
          if (result.log_index !== null) parts.push(`logged as entry ${result.log_index}`);
          if (result.pdq_only) parts.push(`kept as fingerprints only, labelled “${result.label}”`);
          if (remember && !photo.pdqOnly.checked) {
            parts.push(missing.has(result.sha256)
              ? "not found in that folder, so its place is not remembered" : "place remembered");
          }
          const cell = statusCell(photo, parts.join("; "), "ok");
          if (result.signed) addCredentialsButton(cell, photo, result.sha256);
        } catch (error) {
          failed++;
          statusCell(photo, `${error.message} (${error.code})`, "error");
        }
        done++;
      }
      setProgress("register-progress", done, todo.length);
      say("register-status", `Registered ${done - failed} of ${todo.length} photos` +
        (failed ? `; ${failed} failed (see the table).` : ". Only their fingerprints were kept."));
    } finally {
      registering = false;
      updateRegisterButton();
      refreshStatus();
    }
  }

  function addCredentialsButton(cell, photo, sha256) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = "Download its Content Credentials";
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` (${photo.file.name}.c2pa)`;
    button.appendChild(hidden);
    button.addEventListener("click", async () => {
      try {
        const response = await api("GET", `/api/credentials/${sha256}`);
        saveBlob(await response.blob(), `${photo.file.name}.c2pa`);
      } catch (error) {
        statusCell(photo, `${error.message} (${error.code})`, "error");
      }
    });
    cell.append(" ", button);
  }

  async function refreshStatus() {
    try {
      const status = await apiJson("GET", "/api/status");
      const n = status.entries;
      let text = n === 0 ? "No photo is registered yet."
        : `${number(n)} ${n === 1 ? "photo is" : "photos are"} registered (fingerprints only).`;
      if (status.remembered) {
        text += ` TakeBack remembers where ${status.remembered} of your originals are.`;
      }
      if (status.keys) text += " Your Content Credentials key is set up.";
      say("bank-summary", text);
      $("forget-button").hidden = !status.remembered;
      say("where-paths", `On this computer: the bank is in ${status.where.bank}; ` +
        `signing keys in ${status.where.keys}; the app's lists in ${status.where.app}.`);
    } catch (error) {
      say("bank-summary", error.message);
    }
  }

  async function forgetOriginals() {
    try {
      const result = await apiJson("DELETE", "/api/originals");
      say("forget-status", `TakeBack forgot where ${result.forgotten} originals are. ` +
        "The photos themselves were not touched.");
    } catch (error) {
      say("forget-status", error.message);
    }
    refreshStatus();
  }

  async function exportBank() {
    const select = $("export-format");
    clearError("export-error", select);
    say("export-status", "");
    try {
      const response = await api("GET", `/api/export?format=${encodeURIComponent(select.value)}`);
      const count = response.headers.get("x-takeback-count");
      const name = fileName(response, "takeback-fingerprints.txt");
      saveBlob(await response.blob(), name);
      say("export-status", `Saved ${count} fingerprints as ${name} (in your downloads).`);
    } catch (error) {
      showError("export-error", error, select);
    }
  }

  function entriesOf(entry) {
    if (entry.isFile) return new Promise((resolve) => entry.file((f) => resolve([f]), () => resolve([])));
    if (!entry.isDirectory) return Promise.resolve([]);
    const reader = entry.createReader();
    return new Promise((resolve) => {
      const all = [];
      const next = () => reader.readEntries(async (batch) => {
        if (!batch.length) {
          const nested = await Promise.all(all.map(entriesOf));
          resolve(nested.flat());
          return;
        }
        all.push(...batch);
        next();
      }, () => resolve([]));
      next();
    });
  }

  const drop = $("photos-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const items = [...(e.dataTransfer.items || [])];
    const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      const folder = entries.some((en) => en.isDirectory);
      const files = (await Promise.all(entries.map(entriesOf))).flat();
      addFiles(files, folder);
    } else {
      addFiles([...e.dataTransfer.files], false);
    }
  });
  $("photos-input").addEventListener("change", (e) => { addFiles([...e.target.files], false); e.target.value = ""; });
  $("folder-input").addEventListener("change", (e) => { addFiles([...e.target.files], true); e.target.value = ""; });
  $("register-button").addEventListener("click", register);
  $("forget-button").addEventListener("click", forgetOriginals);
  $("export-button").addEventListener("click", exportBank);

  // ---------------------------------------------------------------- step 2: check
  let checked = null; // {suspect: File, original: File|null} of the last successful check

  const checkInputs = { adult: $("adult"), suspect: $("suspect-input"), original: $("original-input") };

  function clearCheckErrors() {
    for (const [field, input] of Object.entries(checkInputs)) clearError(`${field}-error`, input);
  }

  function showFieldError(error, inputs, fallbackId) {
    const field = error.field;
    if (field && $(`${field}-error`)) {
      showError(`${field}-error`, error, inputs[field]);
      if (inputs[field]) inputs[field].focus();
    } else {
      showError(fallbackId, error);
    }
  }

  function fillList(id, items) {
    const list = $(id);
    list.textContent = "";
    for (const text of items) {
      const li = document.createElement("li");
      li.textContent = text;
      list.appendChild(li);
    }
  }

  function showImage(figureId, imgId, uri) {
    $(figureId).hidden = !uri;
    if (uri) $(imgId).src = uri;
  }

  function renderResult(result) {
    const verdict = $("verdict");
    verdict.textContent = result.headline;
    verdict.className = result.verdict;
    say("verdict-statement", result.statement);
    let sure = "";
    if (result.verdict !== "inconclusive") {
      sure = `How sure: ${result.confidence_words} (confidence ${result.confidence} on a 0–1 ` +
        "scale of how strongly the measurements support this; not a probability).";
    }
    if (result.verdict === "derived") {
      const areas = result.regions === 1 ? "1 changed area" : `${result.regions} changed areas`;
      sure = `${areas}, outlined and numbered below. ${sure}`;
    }
    say("verdict-confidence", sure);
    say("original-text", result.original_text);
    const images = result.images || {};
    showImage("side-figure", "side-img", images.side_by_side);
    showImage("suspect-figure", "suspect-img", images.suspect);
    $("compare-figure").hidden = !images.overlay;
    if (images.overlay) {
      $("overlay-img").src = images.overlay;
      const heat = $("heatmap-img");
      heat.hidden = !images.heatmap;
      if (images.heatmap) heat.src = images.heatmap;
      $("blend").parentElement.hidden = !images.heatmap;
      $("blend").value = 0;
      blend();
    }
    const marks = $("marks");
    marks.textContent = "";
    for (const mark of result.marks) {
      const li = document.createElement("li");
      const title = document.createElement("strong");
      title.textContent = `${mark.title}: `;
      const found = document.createElement("span");
      found.className = mark.found ? "found" : "";
      found.textContent = mark.text;
      const meaning = document.createElement("span");
      meaning.className = "hint";
      meaning.textContent = ` ${mark.meaning}`;
      li.append(title, found, document.createElement("br"), meaning);
      marks.appendChild(li);
    }
    fillList("proves", result.proves);
    fillList("not-proves", result.does_not_prove);
    fillList("notes", result.notes);
    const original = result.original ? `; original ${result.original.name}: SHA-256 ${result.original.sha256}` : "";
    say("hashes", `Picture checked ${result.suspect.name}: SHA-256 ${result.suspect.sha256}${original}`);
    $("result").hidden = false;
    verdict.focus();
  }

  function blend() {
    const value = Number($("blend").value);
    $("heatmap-img").style.opacity = String(value / 100);
    $("blend").setAttribute("aria-valuetext", `${100 - value}% overlay, ${value}% heatmap`);
  }
  $("blend").addEventListener("input", blend);

  $("check-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearCheckErrors();
    say("check-status", "");
    const suspect = checkInputs.suspect.files[0] || null;
    const original = checkInputs.original.files[0] || null;
    let problem = false;
    if (!checkInputs.adult.checked) {
      showError("adult-error", { code: "input_error", message: "confirm that the person shown is an " +
        "adult; if they are or may be under 18, do not examine or keep the picture: report its " +
        "address to a child-protection hotline instead (see above)" }, checkInputs.adult);
      problem = true;
    }
    if (!suspect) {
      showError("suspect-error", { code: "input_error", message: "choose the picture you found first" },
        checkInputs.suspect);
      problem = true;
    }
    for (const [field, file] of [["suspect", suspect], ["original", original]]) {
      const tooBig = file && sizeError(file);
      if (tooBig) { showError(`${field}-error`, tooBig, checkInputs[field]); problem = true; }
    }
    if (problem) {
      const first = [checkInputs.adult, checkInputs.suspect, checkInputs.original]
        .find((el) => el.getAttribute("aria-invalid") === "true");
      if (first) first.focus();
      return;
    }
    const form = new FormData();
    form.append("adult", "yes");
    form.append("suspect", suspect, suspect.name);
    if (original) form.append("original", original, original.name);
    $("check-button").disabled = true;
    say("check-status", "Checking the picture… (this takes a few seconds)");
    try {
      const result = await apiJson("POST", "/api/check", form);
      checked = { suspect, original };
      say("check-status", "Done. The result is below.");
      renderResult(result);
      $("package-button").disabled = false;
      $("evidence-needs").textContent = `The package will be made from the picture you checked, ${suspect.name}.`;
    } catch (error) {
      say("check-status", "");
      showFieldError(error, checkInputs, "suspect-error");
    } finally {
      $("check-button").disabled = false;
    }
  });
  for (const input of [checkInputs.suspect, checkInputs.original]) {
    input.addEventListener("change", () => clearError(`${input.name}-error`, input));
  }
  checkInputs.adult.addEventListener("change", () => clearError("adult-error", checkInputs.adult));

  // ---------------------------------------------------------------- step 3: evidence
  const caseInputs = {
    seen_url: $("seen-url"), seen_at: $("seen-at"), account: $("account"),
    screenshot: $("screenshot-input"), requested_by: $("requested-by"), case_id: $("case-id"),
    notes: $("notes"),
  };
  let packageToken = null;

  function withZone(local) {
    // "2026-05-01T21:30" (the browser's local time) -> "2026-05-01T21:30+02:00"
    if (!local) return "";
    const minutes = -new Date(local).getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "-";
    const abs = Math.abs(minutes);
    const pad = (n) => String(n).padStart(2, "0");
    return `${local}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  $("evidence-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const [field, input] of Object.entries(caseInputs)) clearError(`${field}-error`, input);
    clearError("package-error");
    if (!checked) {
      showError("package-error", { code: "input_error", message: "check a picture first (step 2)" });
      return;
    }
    const screenshot = caseInputs.screenshot.files[0] || null;
    const tooBig = screenshot && sizeError(screenshot);
    if (tooBig) {
      showError("screenshot-error", tooBig, caseInputs.screenshot);
      caseInputs.screenshot.focus();
      return;
    }
    const form = new FormData();
    form.append("adult", "yes");
    form.append("suspect", checked.suspect, checked.suspect.name);
    if (checked.original) form.append("original", checked.original, checked.original.name);
    if (screenshot) form.append("screenshot", screenshot, screenshot.name);
    for (const name of ["seen_url", "account", "requested_by", "case_id", "notes"]) {
      form.append(name, caseInputs[name].value);
    }
    form.append("seen_at", withZone(caseInputs.seen_at.value));
    $("package-button").disabled = true;
    say("package-status", "Writing the evidence package… (this takes a few seconds)");
    try {
      const result = await apiJson("POST", "/api/package", form);
      packageToken = result.token;
      $("zip-link").href = result.zip.url;
      $("zip-link").download = result.zip.url.split("/").pop();
      $("pdf-link").href = result.pdf.url;
      $("pdf-link").download = result.pdf.url.split("/").pop();
      say("zip-size", `(${number(Math.ceil(result.zip.bytes / 1024))} KB, ${result.files} files)`);
      say("pdf-size", `(${number(Math.ceil(result.pdf.bytes / 1024))} KB)`);
      say("package-sha", result.sha256);
      say("package-status", "The evidence package is ready: download it below.");
      $("package-result").hidden = false;
      $("package-title").focus();
    } catch (error) {
      say("package-status", "");
      if (!(error.field in caseInputs)) error = { ...error, field: null };
      showFieldError(error, caseInputs, "package-error");
    } finally {
      $("package-button").disabled = false;
    }
  });

  $("package-forget").addEventListener("click", async () => {
    if (!packageToken) return;
    try {
      await apiJson("DELETE", `/api/package/${encodeURIComponent(packageToken)}`);
    } catch (error) {
      // already gone: nothing to forget
    }
    packageToken = null;
    $("package-result").hidden = true;
    say("package-status", "The package was forgotten. Files you downloaded are not affected.");
  });

  refreshStatus();
  updateRegisterButton();
})();
