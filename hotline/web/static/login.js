// Sign-in page: POST /api/v1/auth/login, then route by role.
import { api, cookie, homeFor } from "/static/common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function safeNext(user) {
  const next = new URLSearchParams(location.search).get("next") || "";
  const home = homeFor(user);
  // Only same-site paths, and only into the user's own area.
  if (next.startsWith("/") && !next.startsWith("//") && next.split(/[?#]/)[0] === home) {
    return next;
  }
  return home;
}

// Already signed in (the readable CSRF cookie tells): go straight to the right page.
if (cookie("hotline_csrf")) {
  api("/api/v1/auth/me").then(({ user }) => location.replace(safeNext(user))).catch(() => {});
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const login = form.login.value.trim();
  const password = form.password.value;
  if (!login || !password) {
    showError("Введите логин и пароль");
    (login ? form.password : form.login).focus();
    return;
  }
  showError("");
  submit.disabled = true;
  submit.textContent = "Вход…";
  try {
    const { user } = await api("/api/v1/auth/login", { method: "POST", body: { login, password } });
    location.assign(safeNext(user));
  } catch (exc) {
    showError(exc.message || "Не удалось войти");
    form.password.value = "";
    form.password.focus();
    submit.disabled = false;
    submit.textContent = "Войти";
  }
});
