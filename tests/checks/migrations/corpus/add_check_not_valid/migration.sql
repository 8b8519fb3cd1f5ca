ALTER TABLE documents ADD CONSTRAINT documents_title_len CHECK (char_length(title) < 1000) NOT VALID;
