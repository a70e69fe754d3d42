import type { Prisma, PrismaClient } from "./generated/prisma/client.js";

/** The client handed to an interactive transaction (`prisma.$transaction(async (tx) => …)`). */
export type Tx = Prisma.TransactionClient;

/** Either a client or a transaction: services take a `Db` so callers can compose them in one transaction. */
export type Db = PrismaClient | Tx;
