// Start Swagger UI on the API documentation page.
//
// A script file rather than an inline <script>: the site's Content-Security-Policy allows
// scripts from this origin only. Everything the page needs comes from the service that serves
// it, so the documentation works without any network access beyond that service.
"use strict";

(function () {
  var UNSAFE_METHODS = ["POST", "PUT", "PATCH", "DELETE"];

  function readCookie(name) {
    var prefix = name + "=";
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i += 1) {
      if (parts[i].indexOf(prefix) === 0) {
        return decodeURIComponent(parts[i].slice(prefix.length));
      }
    }
    return null;
  }

  // "Try it out" with a browser session: cookie-authenticated unsafe requests need the CSRF
  // token (readable cookie) echoed in a header, as the web UI does.
  function addCsrfHeader(request) {
    var method = (request.method || "GET").toUpperCase();
    if (UNSAFE_METHODS.indexOf(method) !== -1 && !request.headers["X-CSRF-TOKEN"]) {
      var isRefresh = /\/api\/v1\/auth\/refresh$/.test(request.url.split("?")[0]);
      var token = readCookie(isRefresh ? "csrf_refresh_token" : "csrf_access_token");
      if (token) {
        request.headers["X-CSRF-TOKEN"] = token;
      }
    }
    return request;
  }

  function start() {
    var root = document.getElementById("swagger-ui");
    window.ui = window.SwaggerUIBundle({
      url: root.getAttribute("data-openapi-url"),
      domNode: root,
      deepLinking: true,
      // The default would show a badge fetched from the public validator service.
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      requestInterceptor: addCsrfHeader,
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
