export { GraphSimulator, startGraphSimulator, graphError, type SimOptions, type Faults } from "./server.js";
export type { SimApp, SimUser, SimMessage } from "./model.js";
