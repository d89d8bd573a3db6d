// Room page. Messages go into the log as text (textarea value), never as HTML. The socket
// reconnects by itself with exponential backoff and jitter, and resumes after the last id it
// saw, so a restarted server loses nothing from the user's view. What the user sends carries a
// client_id and is sent again after a reconnect until the room echoes it: the server stores a
// client_id once, so nothing typed is lost or doubled (docs/protocol.md).
"use strict";
const roomName = JSON.parse(document.getElementById("room-name").textContent);
let lastId = JSON.parse(document.getElementById("last-id").textContent);
const log = document.querySelector("#chat-log");
const input = document.querySelector("#chat-message-input");
const status = document.querySelector("#chat-status");
const FATAL = new Set([4400, 4422]); // the room name or the query is wrong: retrying cannot help
const RETRY = new Set(["rate_limited", "unavailable"]); // refused for now: send again later
const pending = new Map(); // client_id -> text: sent, not yet seen in the room
let socket = null;
let attempt = 0;
let closeDetail = null;

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

function newClientId() {
  // getRandomValues, unlike randomUUID, also works on plain-HTTP pages.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sendPending() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return; // onopen sends them
  for (const [clientId, text] of pending) {
    socket.send(JSON.stringify({ message: text, client_id: clientId }));
  }
}

function resendLater(clientId, seconds) {
  window.setTimeout(() => {
    if (pending.has(clientId) && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ message: pending.get(clientId), client_id: clientId }));
    }
  }, seconds * 1000);
}

function connect() {
  socket = new WebSocket(socketUrl());
  socket.onopen = () => {
    attempt = 0;
    setStatus("connected");
    sendPending(); // a repeat of something already stored is only acknowledged
  };
  socket.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if (data.type === "error") {
      setStatus(data.detail, true);
      if (!pending.has(data.client_id)) return;
      if (RETRY.has(data.code)) {
        resendLater(data.client_id, data.retry_after || 3);
      } else {
        // Refused for good (too long, ...): give the text back to the user to edit.
        if (!input.value) input.value = pending.get(data.client_id);
        pending.delete(data.client_id);
      }
      return;
    }
    if (data.type === "close") {
      closeDetail = data.detail; // why the close that follows (Daphne drops close reasons)
      return;
    }
    if (data.client_id) pending.delete(data.client_id); // our message is in the room
    if (data.type !== "message") return; // an ack, or a frame this page does not know
    if (typeof data.id === "number") {
      if (data.id <= lastId) return; // already shown (a resume can overlap what we had)
      lastId = data.id;
    }
    append(data.message);
  };
  socket.onclose = (e) => {
    const why = e.reason || closeDetail || e.code;
    closeDetail = null;
    if (FATAL.has(e.code)) {
      setStatus("closed: " + why, true);
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
  if (!input.value.trim()) return;
  const clientId = newClientId();
  pending.set(clientId, input.value);
  input.value = "";
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ message: pending.get(clientId), client_id: clientId }));
  }
});
connect();
