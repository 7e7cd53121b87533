// Keywords at upload: names and terms the recogniser should favour, typed once and sent with
// every file chosen after that. Sent as the openai SDKs send a list — one `keywords[]` part per
// phrase — so the server reads them as it reads any client's (`phrase` or `phrase:boost`,
// separated by commas or new lines); a phrase it cannot use fails that upload with the
// server's message, which names the phrase.

import { $ } from "./ui.js";

/** The form fields the keywords box adds to POST /v1/jobs: [["keywords[]", phrase], …]. */
export function keywordFields() {
  return $("keywords")
    .value.split(/[,\n\r]+/)
    .map((phrase) => phrase.trim())
    .filter((phrase) => phrase)
    .map((phrase) => ["keywords[]", phrase]);
}
