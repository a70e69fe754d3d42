-- Store integrity: the sha256 of an image's stored qcow2 file (Image.sha256 is that of the content
-- as delivered), so `image verify` can tell a changed file from a whole one.
ALTER TABLE "Image" ADD COLUMN "storedSha256" TEXT;
