UPDATE documents SET body = '' ;
