// Room page. Messages go into the log as text (textarea value), never as HTML. The socket
// reconnects by itself with exponential backoff and jitter, and resumes after the last id it
// saw, so a restarted server loses nothing from the user's view (docs/protocol.md).
"use strict";
const roomName = JSON.parse(document.getElementById("room-name").textContent);
let lastId = JSON.parse(document.getElementById("last-id").textContent);
const log = document.querySelector("#chat-log");
const input = document.querySelector("#chat-message-input");
const status = document.querySelector("#chat-status");
const FATAL = new Set([4400, 4422]); // the room name or the query is wrong: retrying cannot help
let socket = null;
let attempt = 0;

function setStatus(text, isError) {
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function socketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + window.location.host + "/ws/chat/" + encodeURIComponent(roomName) +
    "/?after=" + lastId;
}

function append(text) {
  log.value += text + "\n";
  log.scrollTop = log.scrollHeight;
}

function connect() {
  socket = new WebSocket(socketUrl());
  socket.onopen = () => {
    attempt = 0;
    setStatus("connected");
  };
  socket.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if (data.type === "error") {
      setStatus(data.detail, true);
      return;
    }
    if (typeof data.id === "number") {
      if (data.id <= lastId) return; // already shown (a resume can overlap what we had)
      lastId = data.id;
    }
    append(data.message);
  };
  socket.onclose = (e) => {
    if (FATAL.has(e.code)) {
      setStatus("closed: " + (e.reason || e.code), true);
      return;
    }
    // Full jitter: a restarted server is not hit by every client at the same instant.
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    attempt += 1;
    setStatus("disconnected; reconnecting in " + (delay / 1000).toFixed(1) + " s", true);
    window.setTimeout(connect, delay);
  };
}

input.focus();
input.addEventListener("keyup", (e) => {
  if (e.key === "Enter") document.querySelector("#chat-message-submit").click();
});
document.querySelector("#chat-message-submit").addEventListener("click", () => {
  // Keep the text in the box until a socket is open to take it.
  if (!socket || socket.readyState !== WebSocket.OPEN || !input.value.trim()) return;
  socket.send(JSON.stringify({ message: input.value }));
  input.value = "";
});
connect();
