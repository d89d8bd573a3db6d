// Index page: go to /chat/<room>/; the name is URL-encoded so any text works as a room name.
"use strict";
const input = document.querySelector("#room-name-input");
input.focus();
input.addEventListener("keyup", (e) => {
  if (e.key === "Enter") document.querySelector("#room-name-submit").click();
});
document.querySelector("#room-name-submit").addEventListener("click", () => {
  const roomName = input.value;
  if (roomName.trim()) window.location.pathname = "/chat/" + encodeURIComponent(roomName) + "/";
});
