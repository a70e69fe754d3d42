/** The API the CLI talks to when nothing else names one. */
export const DEFAULT_API_URL = "http://127.0.0.1:8080";
