/**
 * @ezio/cli: the `ezio` command, usable as a library too (`Cli.run(argv)`).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Cli from "./Cli.js"
