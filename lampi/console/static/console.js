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

  function uploadOne(file, idx) {
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
    var params = new URLSearchParams({bucket: zone.dataset.bucket, name: zone.dataset.prefix + file.name});
    if (zone.dataset.owner) params.set("owner", zone.dataset.owner);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/bucket/upload?" + params.toString());
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      var pct = Math.floor(100 * e.loaded / e.total);
      bar.value = pct;
      status.textContent = pct + "%";
      sent[idx] = e.loaded;
      updateOverall();
    };
    xhr.onload = function () {
      pending--;
      // 201 only: an ended session answers with a redirect the XHR follows to the login page
      if (xhr.status === 201) {
        bar.value = 100;
        status.textContent = "100% done";
        li.className = "done";
        sent[idx] = file.size;
      } else {
        status.textContent = xhr.status === 200 ? "failed (log in again)" : "failed (" + xhr.status + ")";
        li.className = "failed";
      }
      updateOverall();
      if (pending === 0) {
        var again = document.createElement("a");
        again.href = window.location.href;
        again.id = "refresh-listing";
        again.textContent = "Show the new contents";
        list.appendChild(again);
      }
    };
    xhr.onerror = function () {
      pending--;
      status.textContent = "failed (connection)";
      li.className = "failed";
    };
    xhr.send(file);
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
