// Entry point for the Azure Functions runtime (package.json "main": dist/functions/index.js).
import { app } from "@azure/functions";
import { registerAll } from "./definition.js";
import { functionDefinitions } from "./registry.js";

registerAll(app, functionDefinitions);
