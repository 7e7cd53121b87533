// The API key dialog: opened by the "API key" button, and by any call the server answers 401
// (then it says whether the key just typed or the one saved earlier was refused).

import * as api from "./api.js";
import { t } from "./i18n.js";
import { $ } from "./ui.js";

let keyJustEntered = false; // a 401 now means the key just typed is wrong, not an old one

function askKey() {
  const dialog = $("key-dialog");
  const error = $("key-error");
  const key = api.getKey();
  if (key) {
    error.textContent = keyJustEntered ? t("keyWrong") : t("keySavedWrong");
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  $("key-forget").hidden = !key;
  if (!dialog.open) {
    $("key-input").value = "";
    dialog.showModal();
  }
  $("key-input").focus();
}

/** The server took the key (or needs none): a later 401 is about a key saved earlier. */
export function keyAccepted() {
  keyJustEntered = false;
}

/** The dialog's buttons; `onChange` runs after the key is saved or forgotten. */
export function wireKey(onChange) {
  api.onUnauthorized(() => askKey());
  $("key-button").addEventListener("click", () => {
    keyJustEntered = false;
    $("key-error").hidden = true;
    $("key-forget").hidden = !api.getKey();
    $("key-input").value = "";
    $("key-dialog").showModal();
  });
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    api.setKey(value);
    keyJustEntered = true;
    $("key-dialog").close();
    await onChange();
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-forget").addEventListener("click", () => {
    api.setKey("");
    $("key-dialog").close();
    onChange();
  });
}
