// The page's first script (classic, before any module): keeps a short list
// of what went wrong in this page — uncaught errors (a module that failed to
// load or parse included), unhandled promise rejections, console.error
// calls, elements that failed to load, CSP violations — in
// window.__cloakroomErrors. Nothing leaves the page. It is how a test reads
// errors in an engine whose driver cannot see the console (WebKit over
// classic WebDriver: webtest/webkit.mjs, docs/BROWSERS.md). Only the
// messages are kept (as the console shows them), at most 100, 500
// characters each.
(function () {
  'use strict';
  if (window.__cloakroomErrors) return;
  var errs = window.__cloakroomErrors = [];
  function push(s) { if (errs.length < 100) errs.push(String(s).slice(0, 500)); }
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) push('failed to load: <' + t.tagName.toLowerCase() + '> ' + (t.currentSrc || t.src || t.href || ''));
    else push('page error: ' + (e.message || 'error'));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    var r = e.reason;
    push('unhandled rejection: ' + (r && r.message ? r.message : String(r)));
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    push('CSP violation: ' + e.violatedDirective + ' ' + (e.blockedURI || ''));
  });
  var ce = console.error;
  console.error = function () {
    var a = Array.prototype.slice.call(arguments);
    push('console error: ' + a.map(function (x) { return x && x.message ? x.message : String(x); }).join(' '));
    return ce.apply(this, arguments);
  };
})();
