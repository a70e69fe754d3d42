export * from "./ipv4.js";
export * from "./mac.js";
export * from "./ifnames.js";
export * from "./nftRuleset.js";
export * from "./dnsmasq.js";
export * from "./cloudInit.js";
export * from "./seedImage.js";
