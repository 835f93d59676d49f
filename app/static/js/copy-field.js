// Copy buttons: a button with data-copy-target copies the value of the field with that id.
// Buttons start hidden, so pages without this script show only the selectable field.
(function () {
  "use strict";

  function announce(button, message) {
    const status = document.getElementById(button.dataset.copyStatus);
    if (status) {
      status.textContent = message;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
    });
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy-target]");
    if (!button) {
      return;
    }
    const field = document.getElementById(button.dataset.copyTarget);
    field.select();
    // Browsers offer the Clipboard API only in secure contexts (HTTPS or localhost). Elsewhere
    // the selected field lets the user copy with the keyboard.
    if (!navigator.clipboard) {
      announce(button, "Copying is not available here: press Ctrl+C or Cmd+C to copy the selected key.");
      return;
    }
    navigator.clipboard.writeText(field.value).then(
      function () {
        announce(button, "Copied the key to the clipboard.");
      },
      function () {
        announce(button, "Copying failed: press Ctrl+C or Cmd+C to copy the selected key.");
      }
    );
  });
})();
