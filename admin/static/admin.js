// recsink admin: small enhancements. Every page works without this script.
(function () {
  "use strict";

  // Live parts: re-fetch the fragment of each [data-live] element every few
  // seconds, unless the tab is hidden or the admin is working inside it.
  var INTERVAL = 5000;
  function refresh(el) {
    if (document.hidden || el.contains(document.activeElement)) return;
    fetch(el.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) el.innerHTML = html; })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    setInterval(function () { refresh(el); }, INTERVAL);
  });

  // The IAM policy follows the bucket as it is typed.
  var bucket = document.getElementById("bucket");
  var policy = document.getElementById("policy");
  var policyBucket = document.getElementById("policy-bucket");
  if (bucket && policy) {
    var timer;
    bucket.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var v = bucket.value.trim();
        fetch(policy.getAttribute("data-policy-src") + "?bucket=" + encodeURIComponent(v), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (t) {
            if (t === null) return;
            policy.textContent = t;
            if (policyBucket) policyBucket.textContent = /"arn:aws:s3:::YOUR-BUCKET"/.test(t) ? "YOUR-BUCKET" : v.replace(/\/+$/, "");
          })
          .catch(function () {});
      }, 250);
    });
  }

  // Copy buttons appear only where the clipboard can be used.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    if (!navigator.clipboard) return;
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var src = document.querySelector(btn.getAttribute("data-copy"));
      navigator.clipboard.writeText(src.textContent).then(function () {
        btn.textContent = "Copied";
        setTimeout(function () { btn.textContent = "Copy"; }, 1500);
      });
    });
  });
})();
