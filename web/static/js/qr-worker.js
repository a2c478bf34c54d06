// Decodes QR codes in camera frames off the main thread with the vendored
// jsQR (a UMD bundle: importScripts defines self.jsQR). A classic worker, so
// the strict CSP (script-src 'self') allows it like any same-origin script.
/* global jsQR */
importScripts('../vendor/jsqr/jsQR.js');

self.onmessage = (e) => {
  const { data, width, height } = e.data;
  const code = jsQR(data, width, height, { inversionAttempts: 'attemptBoth' });
  self.postMessage({ text: code ? code.data : '' });
};
