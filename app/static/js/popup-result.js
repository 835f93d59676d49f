// The last page of a pop-up flow: report the outcome to the dashboard and close.
(function () {
  "use strict";

  var result = document.getElementById("flow-result");
  if (!result) {
    return;
  }
  var message = {
    type: "personal-auth:result",
    integrationId: result.dataset.integrationId,
    outcome: result.dataset.outcome
  };

  var closeButton = document.querySelector("[data-close-window]");
  var hasOpener = Boolean(window.opener && !window.opener.closed);
  if (closeButton) {
    closeButton.hidden = !hasOpener;
    closeButton.addEventListener("click", function () { window.close(); });
  }

  if (result.dataset.outcome !== "connected") {
    return;
  }
  if (hasOpener) {
    // Only a page of this app's own origin may receive the message.
    window.opener.postMessage(message, window.location.origin);
  } else if ("BroadcastChannel" in window) {
    new BroadcastChannel("personal-auth").postMessage(message);
  }
  window.close();
})();
