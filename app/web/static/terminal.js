// jobgraph's web terminal: xterm.js on the WebSocket at this page's own path, speaking
// the legacy console's protocol. Client frames start with a channel byte: 0x00 + UTF-8
// is keyboard input, 0x04 + {"Height","Width"} the size (on open and on every resize),
// 00 00 00 every 30 s a keep-alive. Server frames are the terminal's raw output.
(function () {
  "use strict";
  var STDIN = 0x00, RESIZE = 0x04, KEEPALIVE_MS = 30000;
  var status = document.getElementById("status");

  function show(text) {
    status.textContent = text;
    status.hidden = false;
  }

  // The server checked the credential (without spending it) and found it unusable.
  if (document.body.dataset.problem) {
    show(document.body.dataset.problem);
    return;
  }

  var term = new Terminal({ cursorBlink: true, scrollback: 5000 });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.term = term; // lets tests (and the curious) read the screen

  var encoder = new TextEncoder();
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  var socket = new WebSocket(scheme + "//" + location.host + location.pathname);
  socket.binaryType = "arraybuffer";
  var opened = false, keepalive = null;

  function send(channel, bytes) {
    if (socket.readyState !== WebSocket.OPEN) return;
    var frame = new Uint8Array(bytes.length + 1);
    frame[0] = channel;
    frame.set(bytes, 1);
    socket.send(frame);
  }

  function sendSize() {
    send(RESIZE, encoder.encode(JSON.stringify({ Height: term.rows, Width: term.cols })));
  }

  socket.onopen = function () {
    opened = true;
    sendSize();
    keepalive = setInterval(function () {
      if (socket.readyState === WebSocket.OPEN) socket.send(new Uint8Array([0, 0, 0]));
    }, KEEPALIVE_MS);
    term.focus();
  };
  // xterm.js decodes UTF-8 itself, also across frames.
  socket.onmessage = function (event) {
    term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
  };
  socket.onclose = function () {
    clearInterval(keepalive);
    show(opened
      ? "The terminal session has ended."
      : "The terminal could not be opened: its link works once and only for a short " +
        "time, and only while the pod runs. Ask for a new terminal URL.");
  };

  term.onData(function (data) { send(STDIN, encoder.encode(data)); });
  // Some mouse reports are raw bytes in a string, one byte per character.
  term.onBinary(function (data) {
    send(STDIN, Uint8Array.from(data, function (c) { return c.charCodeAt(0) & 0xff; }));
  });
  term.onResize(sendSize);
  window.addEventListener("resize", function () { fit.fit(); });
})();
