// An event category as people read it: the page's own word for it in its language,
// else the display name the events service gives the category, else its code.
import { t } from "./i18n.js";

/** `categories` is the categories API's list ({code, display_name}). */
export function categoryName(code, categories = []) {
  const key = `category.${code}`;
  const own = t(key);
  if (own !== key) return own;
  const listed = categories.find((c) => c.code === code);
  return (listed && listed.display_name) || code;
}
