// Colour theme: the system's (prefers-color-scheme) unless the user picked one with the toggle.
// Loaded as a classic script in <head>, so the saved choice applies before the first paint.
// The choice ("light" or "dark") is the only thing the UI keeps in localStorage.
(function () {
  "use strict";
  var KEY = "theme";
  var root = document.documentElement;

  function saved() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : null;
    } catch (e) {
      return null; // storage disabled: follow the system
    }
  }

  function systemTheme() {
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function apply(theme) {
    root.dataset.theme = theme;
  }

  apply(saved() || systemTheme());

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
    if (!saved()) apply(systemTheme());
  });

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    function label() {
      var next = root.dataset.theme === "dark" ? "light" : "dark";
      button.setAttribute("aria-label", "Switch to the " + next + " theme");
      button.title = "Switch to the " + next + " theme";
    }
    label();
    button.addEventListener("click", function () {
      var next = root.dataset.theme === "dark" ? "light" : "dark";
      apply(next);
      try {
        window.localStorage.setItem(KEY, next);
      } catch (e) {
        // not saved: the choice lasts for this page only
      }
      label();
    });
  });
})();
