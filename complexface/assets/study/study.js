// complexface study pages: response time from the moment the image is on screen, one submission per form.
(function () {
  "use strict";
  var img = document.querySelector("figure.stimulus img");
  var shown = null;
  function mark() { if (shown === null) { shown = performance.now(); } }
  if (!img) { mark(); } else if (img.complete && img.naturalWidth > 0) { mark(); } else { img.addEventListener("load", mark); }
  Array.prototype.forEach.call(document.querySelectorAll("form.once"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      var rt = form.querySelector("input[name=rt_ms]");
      if (rt && shown !== null) { rt.value = (performance.now() - shown).toFixed(1); }
      form.setAttribute("data-sent", "1");
      setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) { b.disabled = true; });
      }, 0);
    });
  });
})();
