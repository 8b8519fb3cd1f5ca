ALTER TYPE doc_kind ADD VALUE 'docx';
