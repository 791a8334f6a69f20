"""Operations on frame arrays (array in, array out; Y-up convention, see dedkit)."""
