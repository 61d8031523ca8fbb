// Chinese and English: the browser's language picks one, a switch changes it (kept in
// localStorage). Dictionaries are plain JSON files, one per language, under /web/i18n/.
const KEY = "grassroots.lang";
const LANGUAGES = ["zh", "en"];
let dictionary = {};
let current = "en";

export function chosenLanguage() {
  const saved = localStorage.getItem(KEY);
  if (LANGUAGES.includes(saved)) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function language() {
  return current;
}

/** The text for `key` in the current language, with {name} placeholders filled. */
export function t(key, values = {}) {
  let text = Object.prototype.hasOwnProperty.call(dictionary, key) ? dictionary[key] : key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** Fill every element marked data-i18n (text), data-i18n-placeholder, data-i18n-label (aria-label). */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = t(title.dataset.i18n);
}

export async function useLanguage(lang) {
  const response = await fetch(`/web/i18n/${lang}.json`);
  dictionary = await response.json();
  current = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  translate();
  document.dispatchEvent(new CustomEvent("languagechange", { detail: lang }));
}

/** A button that switches to the other language; it names that language in itself. */
export function installSwitch(button) {
  const label = () => {
    const other = current === "zh" ? "en" : "zh";
    button.textContent = other === "zh" ? "中文" : "English";
    button.lang = other === "zh" ? "zh-CN" : "en";
  };
  label();
  button.addEventListener("click", async () => {
    const other = current === "zh" ? "en" : "zh";
    localStorage.setItem(KEY, other);
    await useLanguage(other);
    label();
  });
}
