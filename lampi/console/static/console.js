// lampi console: uploads with progress (file input and drag and drop). No inline
// scripts (the CSP forbids them); names are only ever set with textContent.
"use strict";
(function () {
  var zone = document.getElementById("dropzone");
  if (!zone) return;
  var input = document.getElementById("file-input");
  var list = document.getElementById("uploads");
  var overall = document.getElementById("overall");
  var overallBar = document.getElementById("overall-bar");
  var overallText = document.getElementById("overall-text");
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var total = 0, sent = {}, pending = 0;

  function updateOverall() {
    var done = 0;
    for (var k in sent) done += sent[k];
    var pct = total ? Math.floor(100 * done / total) : 100;
    overallBar.value = pct;
    overallText.textContent = pct + "%";
  }

  var segSize = parseInt(zone.dataset.segmentSize || "0", 10);

  function finished() {
    pending--;
    updateOverall();
    if (pending === 0 && !document.getElementById("refresh-listing")) {
      var again = document.createElement("a");
      again.href = window.location.href;
      again.id = "refresh-listing";
      again.textContent = "Show the new contents";
      list.appendChild(again);
    }
  }

  function row(file) {
    var li = document.createElement("li");
    var label = document.createElement("span");
    label.className = "upload-name";
    label.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    var status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "0%";
    li.appendChild(label); li.appendChild(document.createTextNode(" "));
    li.appendChild(bar); li.appendChild(document.createTextNode(" ")); li.appendChild(status);
    list.appendChild(li);
    return {li: li, bar: bar, status: status};
  }

  function progress(ui, idx, loaded, size) {
    var pct = size ? Math.floor(100 * loaded / size) : 100;
    ui.bar.value = pct;
    ui.status.textContent = pct + "%";
    sent[idx] = loaded;
    updateOverall();
  }

  function succeed(ui, idx, file, what) {
    ui.bar.value = 100;
    ui.status.textContent = "100% done" + (what || "");
    ui.li.className = "done";
    sent[idx] = file.size;
    finished();
  }

  function params(file, extra) {
    var p = new URLSearchParams({bucket: zone.dataset.bucket, name: zone.dataset.prefix + file.name});
    if (zone.dataset.owner) p.set("owner", zone.dataset.owner);
    for (var k in (extra || {})) p.set(k, extra[k]);
    return p.toString();
  }

  function uploadWhole(file, idx, ui) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/bucket/upload?" + params(file));
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) progress(ui, idx, e.loaded, e.total); };
    xhr.onload = function () {
      // 201 only: an ended session answers with a redirect the XHR follows to the login page
      if (xhr.status === 201) { succeed(ui, idx, file); return; }
      ui.status.textContent = xhr.status === 200 ? "failed (log in again)" : "failed (" + xhr.status + ")";
      ui.li.className = "failed";
      finished();
    };
    xhr.onerror = function () {
      ui.status.textContent = "failed (connection)";
      ui.li.className = "failed";
      finished();
    };
    xhr.send(file);
  }

  // A large file in segments (lampi/console/segments.py): the browser keeps which are
  // done; after a failure, "Resume" asks the server which it has and sends only the rest.
  function uploadSegmented(file, idx, ui) {
    var id = {size: String(file.size), mtime: String(file.lastModified || 0)};
    var done = {}, plan = null, sentParts = 0;

    function doneBytes() {
      var n = 0;
      for (var i in done) n += Math.min(plan.segment_size, file.size - i * plan.segment_size);
      return n;
    }

    function fail(text) {
      ui.status.textContent = text + " ";
      ui.li.className = "failed";
      var again = document.createElement("button");
      again.type = "button";
      again.className = "resume";
      again.textContent = "Resume";
      again.setAttribute("aria-label", "Resume the upload of " + file.name);
      again.addEventListener("click", function () {
        again.remove();
        ui.li.className = "";
        ui.status.textContent = "resuming";
        pending++;
        begin();
      });
      ui.status.appendChild(again);
      finished();
    }

    function begin() {
      var xhr = new XMLHttpRequest();
      xhr.open("GET", "/bucket/upload-plan?" + params(file, id));
      xhr.onload = function () {
        if (xhr.status !== 200) { fail(xhr.status === 0 ? "failed (connection)" : "failed (" + xhr.status + ")"); return; }
        var p;
        try { p = JSON.parse(xhr.responseText); } catch (e) { fail("failed (log in again)"); return; }
        if (!p.segmented) { uploadWhole(file, idx, ui); return; }
        plan = p;
        p.done.forEach(function (i) { done[i] = true; });
        next();
      };
      xhr.onerror = function () { fail("failed (connection)"); };
      xhr.send();
    }

    function next() {
      var i = 0;
      while (i < plan.count && done[i]) i++;
      if (i >= plan.count) { complete(); return; }
      var start = i * plan.segment_size, end = Math.min(file.size, start + plan.segment_size);
      var base = doneBytes();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/bucket/upload-segment?" + params(file, Object.assign({index: String(i)}, id)));
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) progress(ui, idx, base + e.loaded, file.size); };
      xhr.onload = function () {
        if (xhr.status !== 201) { fail(xhr.status === 200 ? "failed (log in again)" : "failed (" + xhr.status + ")"); return; }
        done[i] = true;
        sentParts++;
        ui.li.dataset.sentParts = String(sentParts);  // segments this page sent (resumes send only the missing)
        progress(ui, idx, doneBytes(), file.size);
        next();
      };
      xhr.onerror = function () { fail("failed (connection)"); };
      xhr.send(file.slice(start, end));
    }

    function complete() {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/bucket/upload-complete?" + params(file, id));
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("X-Object-Content-Type", file.type || "application/octet-stream");
      xhr.onload = function () {
        if (xhr.status === 201) { succeed(ui, idx, file, " (" + plan.count + " segments)"); return; }
        if (xhr.status === 409) {  // segments gone meanwhile: send them again on resume
          try { JSON.parse(xhr.responseText).missing.forEach(function (i) { delete done[i]; }); } catch (e) {}
        }
        fail(xhr.status === 200 ? "failed (log in again)" : "failed (" + xhr.status + ")");
      };
      xhr.onerror = function () { fail("failed (connection)"); };
      xhr.send();
    }

    ui.li.dataset.segmented = "1";
    begin();
  }

  function uploadOne(file, idx) {
    var ui = row(file);
    if (segSize && file.size > segSize) uploadSegmented(file, idx, ui);
    else uploadWhole(file, idx, ui);
  }

  function start(files) {
    if (!files || !files.length) return;
    overall.hidden = false;
    for (var i = 0; i < files.length; i++) {
      var idx = Object.keys(sent).length;
      total += files[i].size;
      sent[idx] = 0;
      pending++;
      uploadOne(files[i], idx);
    }
    updateOverall();
  }

  input.addEventListener("change", function () { start(input.files); });
  zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    zone.classList.remove("over");
    start(e.dataTransfer.files);
  });
})();

(function () {
  var form = document.getElementById("objects-form");
  if (!form) return;
  form.addEventListener("submit", function (e) {
    var n = form.querySelectorAll('input[name="name"]:checked').length;
    if (n === 0 || !window.confirm("Delete " + n + " object(s)?")) e.preventDefault();
  });
})();

// other forms that ask first: data-confirm holds the question (set as text, never HTML)
document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (e) {
    if (!window.confirm(form.dataset.confirm)) e.preventDefault();
  });
});
