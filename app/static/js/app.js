// Dashboard behaviour: pop-up flows, refreshing the sections, announcements.
(function () {
  "use strict";

  var RESULT_TYPE = "personal-auth:result";

  function refreshSections(integrationId) {
    var sections = document.getElementById("sections");
    if (!sections || !window.htmx) {
      return;
    }
    var url = sections.dataset.refreshUrl + "?moved=" + encodeURIComponent(integrationId);
    window.htmx.ajax("GET", url, { target: "#sections", swap: "outerHTML" });
  }

  function handleResult(data) {
    if (data && data.type === RESULT_TYPE && data.integrationId) {
      refreshSections(data.integrationId);
    }
  }

  // Authenticate and Renew open a pop-up; when the browser blocks it, the plain link
  // runs the same flow as a full page.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-popup-url]");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    var features = "popup=yes,width=640,height=760";
    var popup = window.open(link.dataset.popupUrl, "personal-auth-" + link.dataset.integrationId, features);
    if (!popup) {
      window.location.assign(link.href);
      return;
    }
    popup.focus();
  });

  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) {
      return;
    }
    handleResult(event.data);
  });

  // A provider page with a strict Cross-Origin-Opener-Policy cuts the pop-up off
  // from its opener; the pop-up then reports on this same-origin channel instead.
  if ("BroadcastChannel" in window) {
    new BroadcastChannel("personal-auth").addEventListener("message", function (event) {
      handleResult(event.data);
    });
  }

  // After a swap of the sections, read the server's announcement in the live region
  // and move focus to the card that moved.
  document.addEventListener("htmx:afterSettle", function (event) {
    var sections = document.getElementById("sections");
    if (!sections || !sections.dataset.announce) {
      return;
    }
    var region = document.getElementById("announcer");
    var message = sections.dataset.announce;
    delete sections.dataset.announce;
    if (region) {
      // Clearing first makes screen readers read a repeated message again.
      region.textContent = "";
      window.setTimeout(function () { region.textContent = message; }, 100);
    }
    var target = sections.dataset.focus && document.getElementById(sections.dataset.focus);
    if (target) {
      target.focus();
    }
  });
})();
